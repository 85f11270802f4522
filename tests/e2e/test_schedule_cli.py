"""Issue 3, acceptance 3 and 6 through the CLI: schedules, enable/disable, skipped slots, a tamper-evident trail.

The tick itself runs in this process (it is what the ``regsync.tick`` task calls), on the ledger the CLI uses.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import RegsyncEnv
from tests.connection_files import acme_toml
from tests.unit.fakes import FakeDispatcher
from worker.ledger.db import session_scope
from worker.ledger.models import utcnow
from worker.ledger.views import list_runs
from worker.sandbox.salesforce import SandboxSalesforce
from worker.sandbox.tls import SandboxCA
from worker.scheduling.tick import tick

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)

CLIENT_SECRET = "cs-schedule-cli-0f1e2d3c4b5a"
CONNECTION_TOML = acme_toml(extra='[schedule]\ncron = "* * * * *"\ntimezone = "Europe/Oslo"')


def regsync(
    cwd: Path, *args: str, actor: str | None = "alice", stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}
    environ.pop("REGSYNC_ACTOR", None)
    if actor:
        environ["REGSYNC_ACTOR"] = actor
    return subprocess.run(
        [sys.executable, "-m", "worker.cli.main", *args],
        capture_output=True, text=True, encoding="utf-8", cwd=cwd, env=environ, timeout=60, check=False,
        input=stdin,
    )  # fmt: skip


def sql(url: str, statement: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def ticks(start: dt.datetime, minutes: int, every_s: int = 30) -> FakeDispatcher:
    dispatch = FakeDispatcher()
    for step in range(minutes * 60 // every_s + 1):
        tick(dispatch, now=start + dt.timedelta(seconds=step * every_s))
    return dispatch


@pytest.fixture
def org(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxSalesforce]:
    """The connection's Salesforce: `enable` checks the mapping against it (issue 10)."""
    ca = SandboxCA(tmp_path / "ca")
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv(name, str(ca.bundle_path))
    sandbox = SandboxSalesforce(ca, [], client_id="3MVG9abcdef", client_secret=CLIENT_SECRET).start()
    yield sandbox
    sandbox.stop()


def test_schedule_enable_skip_and_audit_through_the_cli(
    env: RegsyncEnv, org: SandboxSalesforce, tmp_path: Path
) -> None:
    connection_file = CONNECTION_TOML.replace(
        "https://acme.my.salesforce.com/services/oauth2/token", org.token_url
    ).replace('"OrgNr__c"', '"Org_Number__c"')
    (tmp_path / "acme.toml").write_text(connection_file, encoding="utf-8")
    applied = regsync(tmp_path, "connection", "apply", "acme.toml")
    assert applied.returncode == 0, applied.stderr
    for name, value in (("salesforce_client_secret", CLIENT_SECRET), ("registry_token", "proff-token-1a2b")):
        stored = regsync(tmp_path, "secret", "set", "acme", name, stdin=value)
        assert stored.returncode == 0, stored.stderr

    # Acceptance 3: a disabled connection never gets a run, over an hour of every-minute slots.
    idle = ticks(utcnow(), minutes=60)
    with session_scope() as session:
        assert idle.plans == [] and list_runs(session) == []

    # Enabling is admin-only and audited.
    refused = regsync(tmp_path, "enable", "acme", actor=None)
    enabled = regsync(tmp_path, "enable", "acme", "--actor", "bob", "--without-notices")  # no alert channel
    assert refused.returncode == 2 and "REGSYNC_ACTOR" in refused.stderr
    assert enabled.returncode == 0, enabled.stderr

    # A forbid overlap: the first slot's run is still queued when the second slot comes.
    busy = ticks(utcnow(), minutes=2)
    views = json.loads(regsync(tmp_path, "runs", "list", "--json").stdout)
    # Two or three every-minute slots fall into these two minutes, by where the clock stands: the first is
    # queued, every later one is skipped.
    seen = [(v["kind"], v["status"], v["error_code"]) for v in reversed(views)]
    assert 2 <= len(seen) <= 3, seen
    assert seen == [("scheduled", "queued", None)] + [("scheduled", "skipped", "OVERLAP")] * (len(seen) - 1)
    assert busy.plans == [views[-1]["id"]]

    events = json.loads(regsync(tmp_path, "audit", "list", "--json").stdout)
    assert [(e["actor"], e["action"]) for e in events] == [
        ("alice", "connection.create"),
        ("alice", "schedule.set"),
        ("alice", "secret.set"),
        ("alice", "secret.set"),
        ("bob", "connection.enable"),
    ]
    assert events[-1]["before"] == {"enabled": False}
    assert events[-1]["after"] == {"enabled": True, "without_notices": True}
    verified = regsync(tmp_path, "audit", "verify")
    assert verified.returncode == 0 and "5 event(s)" in verified.stdout

    # Acceptance 6 (deletion; edits are covered by test_admin_cli and test_audit_chain): verify names the event.
    sql(env.database_url, f"DELETE FROM audit_events WHERE id = {events[1]['id']}")
    broken = regsync(tmp_path, "audit", "verify")
    assert broken.returncode == 1
    assert f"event {events[2]['id']}" in broken.stderr and "deleted" in broken.stderr
