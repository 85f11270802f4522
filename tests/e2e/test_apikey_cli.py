"""`regsync apikey create/list/revoke` as a subprocess, checked through the HTTP API and the audit trail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.integration.api_world import A, spec_data
from tests.unit.fakes import FakeDispatcher
from worker.api.app import create_app
from worker.api.keys import list_keys
from worker.api.throttle import MemoryThrottle
from worker.connections.apply import apply_connection
from worker.connections.spec import parse_spec
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


def regsync(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "REGSYNC_ACTOR": "alice", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "worker.cli.main", *args],
        capture_output=True, text=True, cwd=cwd, env=environ, timeout=60, check=False,
    )  # fmt: skip


def test_a_key_is_shown_once_works_until_revoked_and_every_step_is_audited(
    env: RegsyncEnv, tmp_path: Path
) -> None:
    with session_scope() as session:
        apply_connection(session, parse_spec(spec_data(A)), "alice")
    created = regsync(
        tmp_path, "apikey", "create", "--connection", A, "--role", "operator", "--label", "oncall"
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("rsk_") and "shown only this once" in created.stderr

    listed = regsync(tmp_path, "apikey", "list", "--json")
    rows = json.loads(listed.stdout)
    assert [(r["role"], r["connections"], r["label"]) for r in rows] == [("operator", [A], "oncall")]
    assert key not in listed.stdout and key[len(rows[0]["prefix"]) :] not in listed.stdout

    client = TestClient(create_app(throttle=MemoryThrottle(100), dispatcher=FakeDispatcher()))
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get(f"/v1/connections/{A}/runs", headers=auth).status_code == 200
    with session_scope() as session:
        assert list_keys(session)[0]["last_used_at"] is not None

    revoked = regsync(tmp_path, "apikey", "revoke", str(rows[0]["id"]))
    assert revoked.returncode == 0, revoked.stderr
    assert client.get(f"/v1/connections/{A}/runs", headers=auth).status_code == 401
    with session_scope() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action.like("apikey.%"))))
        trail = [(e.actor, e.action, json.dumps([e.before, e.after])) for e in events]
    assert [(actor, action) for actor, action, _ in trail] == [
        ("alice", "apikey.create"),
        ("alice", "apikey.revoke"),
    ]
    assert not any(key in values or key[4:] in values for _, _, values in trail)


def test_a_key_for_an_unknown_connection_is_refused(env: RegsyncEnv, tmp_path: Path) -> None:
    done = regsync(tmp_path, "apikey", "create", "--connection", "nope", "--role", "viewer")
    assert done.returncode == 2 and "no connection named nope" in done.stderr and not done.stdout.strip()
