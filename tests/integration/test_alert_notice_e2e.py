"""Issue 5, acceptance 2 and 6, end to end: a real Celery worker process with embedded beat on Redis, the ledger on
PostgreSQL, the sandbox Salesforce and registry over TLS, a local HTTPS webhook receiver and an aiosmtpd SMTP
server with STARTTLS. The registry rejects the token; within 60 s the receiver has a signed webhook (verified
with plain hmac) and the SMTP server a mail. Every payload, mail and SIEM line is searched for the stack's
secrets and for every record value of the sandbox data."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RegsyncEnv
from tests.integration.alert_receivers import Mail, WebhookReceiver, smtp_server
from tests.integration.celery_cluster import (
    REPO_ROOT,
    ClusterEnv,
    WorkerProcess,
    unique_queue,
    wait_until_ready,
)
from tests.integration.privacy_scan import found_in, record_values
from worker.connections.apply import apply_connection
from worker.connections.secrets import set_secret
from worker.connections.spec import parse_spec
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger.db import session_scope
from worker.sandbox.stack import Stack, sandbox_stack
from worker.sync.runner import start_run

DEADLINE_S = 60.0
SIGNING_KEY = "whsec-e2e-" + "9f" * 16
SMTP_PASSWORD = "smtp-e2e-pass-7c41"

pytestmark = pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)


def start_worker_with_beat(env: ClusterEnv, directory: Path, extra: dict[str, str]) -> WorkerProcess:
    """``celery worker -B``: one prefork worker with beat embedded (alerts every 30 s, sweep, tick)."""
    directory.mkdir(parents=True, exist_ok=True)
    out, err = directory / "worker.stdout.log", directory / "worker.stderr.log"
    command = [
        sys.executable, "-m", "celery", "-A", "tasks", "worker", "-B", "--schedule", str(directory / "beat.db"),
        "--pool", "prefork", "--concurrency", "2", "-Q", env.queue, "-n", f"alerts-{env.queue}@%h",
        "--without-mingle", "--without-gossip", "--loglevel", "INFO",
    ]  # fmt: skip
    with out.open("wb") as stdout, err.open("wb") as stderr:
        popen = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env.subprocess_env(**extra), stdout=stdout, stderr=stderr,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    worker = WorkerProcess("alerts", popen, out, err)
    wait_until_ready(worker, 30.0)
    return worker


def connection_file(stack: Stack, hook_url: str, smtp_port: int) -> dict[str, Any]:
    data = stack.spec_data("alerts-e2e", "proff")
    data["alerts"] = {
        "notice_period_minutes": 15,
        "channels": {
            "ops-hook": {"type": "webhook", "url": hook_url, "timeout_s": 5},
            "oncall-mail": {
                "type": "email", "host": "127.0.0.1", "port": smtp_port, "sender": "regsync@example.com",
                "to": ["oncall@example.com"], "username": "regsync",
            },
        },
    }  # fmt: skip
    return data


def install(stack: Stack, data: dict[str, Any]) -> None:
    with session_scope() as session:
        apply_connection(session, parse_spec(data), "admin")
    secrets = {
        "salesforce_client_secret": stack.client_secret,
        "registry_token": stack.registry_token,
        "webhook_signing_key": SIGNING_KEY,
        "smtp_password": SMTP_PASSWORD,
    }
    with session_scope() as session:
        for name, value in secrets.items():
            set_secret(session, "alerts-e2e", name, value, "admin")


def wait_for(condition: Callable[[], bool], deadline: float, what: str) -> float:
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {DEADLINE_S} s")


@pytest.fixture
def world(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Stack, ClusterEnv]]:
    with sandbox_stack(tmp_path / "sandbox", 40) as stack:
        cluster_env = ClusterEnv(
            env.database_url, redis_url, env.secret_key, stack.ca.bundle_path, unique_queue()
        )
        cluster_env.apply(monkeypatch)
        yield stack, cluster_env


def test_revoked_registry_token_gives_signed_webhook_and_mail_within_60_s_without_leaks(
    world: tuple[Stack, ClusterEnv], tmp_path: Path, env: RegsyncEnv
) -> None:
    stack, cluster_env = world
    siem_file = tmp_path / "siem" / "events.jsonl"
    extra = {"REGSYNC_SIEM_FILE": str(siem_file), "REGSYNC_PUBLIC_URL": "https://regsync.example"}
    receiver = WebhookReceiver(stack.ca, SIGNING_KEY).start()
    try:
        with smtp_server(stack.ca, "regsync", SMTP_PASSWORD) as (smtp_port, mails):
            install(stack, connection_file(stack, receiver.url, smtp_port))
            stack.registry.revoke_token()
            worker = start_worker_with_beat(cluster_env, tmp_path / "worker", extra)
            try:
                hooks, mail = run_until_noticed(receiver, mails)
                siem = wait_for_siem(siem_file)
            finally:
                worker.stop()
    finally:
        receiver.stop()

    assert all(h.signature_ok for h in receiver.received), "a webhook failed signature verification"
    revoked = next(h.payload for h in hooks if h.payload["alert"]["kind"] == "auth_revoked")
    assert (
        revoked["alert"]["subject"] == "registry"
        and revoked["alert"]["details"]["error_code"] == "REGISTRY_AUTH"
    )
    assert revoked["links"]["alert"].startswith("https://regsync.example/alerts/")
    assert mail.tls and mail.login == "regsync" and "alerts-e2e" in str(mail.message["Subject"])
    assert {e["type"] for e in siem} == {"alert_transition", "audit_event"}

    texts = [readable(h.body) for h in receiver.received] + [mail_text(m) for m in mails]
    texts += [readable(line.encode()) for line in siem_file.read_text().splitlines()]
    secrets = [stack.client_secret, stack.registry_token, SIGNING_KEY, SMTP_PASSWORD, env.secret_key]
    values = record_values(stack.dataset)
    assert len(values) > 100  # the search really covers the sandbox data
    name = str(stack.dataset.accounts[0]["Name"])
    assert found_in(readable(json.dumps({"leak": name}).encode()), values) == [
        name
    ]  # and would find a leaked record value
    leaks = {i: found_in(text, [*secrets, *values]) for i, text in enumerate(texts)}
    assert {i: hit for i, hit in leaks.items() if hit} == {}
    assert found_in(worker.output(), secrets) == []


def run_until_noticed(receiver: WebhookReceiver, mails: list[Mail]) -> tuple[list[Any], Mail]:
    started = time.monotonic()
    deadline = started + DEADLINE_S
    start_run("alerts-e2e", CeleryDispatcher(), triggered_by="test")

    def revoked_hook() -> bool:
        return any(h.payload.get("alert", {}).get("kind") == "auth_revoked" for h in receiver.received)

    hook_at = wait_for(revoked_hook, deadline, "a webhook for auth_revoked")
    mail_at = wait_for(
        lambda: any("auth_revoked" in str(m.message["Subject"]) for m in mails), deadline, "a mail"
    )
    print(f"\nwebhook after {hook_at - started:.1f} s, mail after {mail_at - started:.1f} s")
    mail = next(m for m in mails if "auth_revoked" in str(m.message["Subject"]))
    return list(receiver.received), mail


def wait_for_siem(path: Path) -> list[dict[str, Any]]:
    """The SIEM lines once the notified transitions are exported (same evaluator pass or the next)."""
    deadline = time.monotonic() + DEADLINE_S

    def exported() -> bool:
        return path.exists() and '"to":"notified"' in path.read_text()

    wait_for(exported, deadline, "the SIEM export of the notified transition")
    return [json.loads(line) for line in path.read_text().splitlines()]


def readable(body: bytes) -> str:
    """JSON as sent and with its \\u escapes undone, so non-ASCII values are found either way."""
    return body.decode() + "\n" + json.dumps(json.loads(body), ensure_ascii=False)


def mail_text(mail: Mail) -> str:
    """The raw mail plus its decoded headers and body (quoted-printable or base64 undone)."""
    payload = mail.message.get_payload(decode=True)
    body = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    headers = "\n".join(f"{k}: {v}" for k, v in mail.message.items())
    return "\n".join([mail.raw.decode("utf-8", "replace"), headers, body])
