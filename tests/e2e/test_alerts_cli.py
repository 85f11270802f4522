"""`regsync alerts …` as a subprocess: a connection file with an [alerts] table, a signed test notice to a
local HTTPS receiver, list/ack (audited, once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.connection_files import acme_toml
from tests.integration.alert_receivers import WebhookReceiver
from tests.integration.alerts_world import add_run, transitions
from worker.alerts.evaluator import evaluate
from worker.connections.apply import apply_connection
from worker.connections.secrets import set_secret
from worker.connections.spec import parse_spec
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, utcnow
from worker.sandbox.tls import SandboxCA

REPO = Path(__file__).resolve().parents[2]
KEY = "whsec-cli-" + "ab12" * 8


def connection_toml(notice: int, url: str) -> str:
    channel = f'[alerts.channels.ops]\ntype = "webhook"\nurl = "{url}"'
    return acme_toml(extra=f"[alerts]\nnotice_period_minutes = {notice}\n\n{channel}")


pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


class Cli:
    def __init__(self, cwd: Path, env: RegsyncEnv, ca: SandboxCA) -> None:
        self.cwd, self.outputs = cwd, list[str]()
        self.environ = {k: v for k, v in os.environ.items() if not k.startswith("REGSYNC_")}
        self.environ |= {
            "REGSYNC_DATABASE_URL": env.database_url,
            "REGSYNC_SECRET_KEY": env.secret_key,
            "SSL_CERT_FILE": str(ca.bundle_path),
            "REQUESTS_CA_BUNDLE": str(ca.bundle_path),
            "COLUMNS": "200",
        }

    def __call__(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "worker.cli.main", *args],
            input=stdin, capture_output=True, text=True, cwd=self.cwd, env=self.environ, timeout=60, check=False,
        )  # fmt: skip
        self.outputs.append(done.stdout + done.stderr)
        return done


@pytest.fixture
def world(
    env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Cli, WebhookReceiver]]:
    ca = SandboxCA(tmp_path / "ca")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle_path))
    receiver = WebhookReceiver(ca, KEY).start()
    (tmp_path / "acme.toml").write_text(connection_toml(60, receiver.url), encoding="utf-8")
    try:
        yield Cli(tmp_path, env, ca), receiver
    finally:
        receiver.stop()


def install(receiver: WebhookReceiver, notice: int = 60) -> None:
    """What `connection apply` and `secret set` do (their own CLI tests cover them), done in-process."""
    data = tomllib.loads(connection_toml(notice, receiver.url))
    with session_scope() as session:
        apply_connection(session, parse_spec(data), "root")
    with session_scope() as session:
        set_secret(session, "acme", "webhook_signing_key", KEY, "root")


def audit_actions() -> list[tuple[str, str]]:
    with session_scope() as session:
        return [(e.actor, e.action) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_alerts_test_list_ack_from_the_command_line(world: tuple[Cli, WebhookReceiver]) -> None:
    cli, receiver = world
    install(receiver)

    tested = cli("alerts", "test", "acme", "--actor", "root")
    assert tested.returncode == 0, tested.stderr
    assert "ops: ok" in tested.stdout
    assert [(w.payload["event"], w.signature_ok) for w in receiver.received] == [("alert.test", True)]

    add_run(1, "failed", utcnow(), planned=3, failed=3)
    evaluate()
    listed = json.loads(cli("alerts", "list", "--open", "--json").stdout)
    assert [(a["kind"], a["status"]) for a in listed] == [("run_failed", "notified")]
    alert_id = str(listed[0]["id"])

    acked = cli("alerts", "ack", alert_id, "--actor", "bob")
    again = cli("alerts", "ack", alert_id, "--actor", "bob")

    assert acked.returncode == 0 and "acknowledged by bob" in acked.stdout
    assert again.returncode == 1 and "acknowledged already" in again.stderr
    assert [t[0] for t in transitions(int(alert_id))] == ["opened", "notified", "acknowledged"]
    assert ("bob", "alert.ack") in audit_actions()
    assert not any(KEY in output for output in cli.outputs)
