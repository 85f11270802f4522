"""Helpers (not a test module) for the API tests: two tenants' connections, runs, failures and API keys.

Connection A (``alpha``) is the caller's; connection B (``bravo-hidden``) belongs to someone else and carries
marker strings and ids that must never appear in an answer to a key of A.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.fernet import Fernet

from worker.alerts.models import Alert, AlertKind, AlertStatus
from worker.api.keys import create_key, revoke_key
from worker.connections.apply import apply_connection
from worker.connections.secrets import set_secret
from worker.connections.spec import parse_spec
from worker.ledger.db import session_scope
from worker.ledger.migrate import upgrade
from worker.ledger.models import Chunk, RecordFailure, Run, RunKind, RunStatus, utcnow
from worker.roles import Role

A, B = "alpha", "bravo-hidden"
#: B's run ids are far from A's so that "the id appears in the answer" is a meaningful check.
B_RUN_IDS = (987650, 987651)
B_MARKERS = ("bravo-hidden", "001BRAVOSECRET01", "B-SECRET-ERROR-TEXT", "912345678", "b-hidden-subject")
B_ALERT_ID = 876540


def spec_data(name: str) -> dict[str, Any]:
    """A connection file's content (no server is contacted: nothing in these tests runs a sync)."""
    return {
        "name": name,
        "salesforce": {
            "token_url": "https://login.salesforce.com/services/oauth2/token",
            "auth": "client_credentials",
            "client_id": f"client-{name}",
            "object": "Account",
            "org_number_field": "Org_Number__c",
            "country": "NO",
        },
        "registry": {"provider": "brreg", "base_url": "https://data.brreg.no/enhetsregisteret/api"},
        "mapping": {"name": {"field": "Name", "policy": "overwrite"}},
    }


def _run(connection_id: int, *, status: RunStatus, kind: RunKind, queued: dt.datetime, **extra: Any) -> Run:
    return Run(
        connection_id=connection_id,
        kind=kind.value,
        status=status.value,
        triggered_by="test",
        queued_at=queued,
        options={},
        **extra,
    )


@dataclass
class World:
    """What :func:`build_world` created: keys by role (A-scoped), B's admin key, and run ids."""

    keys: dict[str, str] = field(default_factory=dict)
    b_admin: str = ""
    a_runs: list[int] = field(default_factory=list)
    a_failed_run: int = 0
    a_queued_run: int = 0
    revoked: str = ""
    #: One open alert of A per role, so that each role's acknowledgement meets an unacknowledged alert.
    a_alerts: dict[str, int] = field(default_factory=dict)
    #: One queued run of A per role, for the same reason (a second cancel answers 409).
    a_cancellable: dict[str, int] = field(default_factory=dict)


def _seed_a(session: Any, connection_id: int, world: World, now: dt.datetime) -> None:
    statuses = [RunStatus.SUCCEEDED, RunStatus.PARTIALLY_FAILED, RunStatus.FAILED, RunStatus.SUCCEEDED]
    for offset, status in enumerate(statuses):
        kind = RunKind.BACKFILL if offset == 3 else RunKind.SCHEDULED
        run = _run(connection_id, status=status, kind=kind, queued=now - dt.timedelta(days=10 - offset))
        session.add(run)
        session.flush()
        world.a_runs.append(run.id)
    world.a_failed_run = world.a_runs[1]
    for n in range(5):
        session.add(
            RecordFailure(
                run_id=world.a_failed_run, record_id=f"001ALPHA0000000{n}", error_code="X", message="a"
            )
        )
    running = _run(
        connection_id,
        status=RunStatus.RUNNING,
        kind=RunKind.MANUAL,
        queued=now - dt.timedelta(minutes=5),
        started_at=now - dt.timedelta(minutes=4),
        planned_complete=True,
        chunks_total=4,
        chunks_done=1,
        planned=800,
        updated=200,
    )
    session.add(running)
    session.flush()
    world.a_queued_run = running.id
    world.a_runs.append(running.id)
    for role in ("viewer", "operator", "admin"):
        queued = _run(connection_id, status=RunStatus.QUEUED, kind=RunKind.MANUAL, queued=now)
        session.add(queued)
        session.flush()
        world.a_cancellable[role] = queued.id
        world.a_runs.append(queued.id)


def _seed_b(session: Any, connection_id: int, now: dt.datetime) -> None:
    for run_id in B_RUN_IDS:
        session.add(
            _run(
                connection_id,
                status=RunStatus.RUNNING,
                kind=RunKind.SCHEDULED,
                queued=now,
                id=run_id,
                error="B-SECRET-ERROR-TEXT",
            )
        )
    session.flush()
    session.add(Chunk(run_id=B_RUN_IDS[0], seq=0, record_ids=["001BRAVOSECRET01"]))
    session.add(
        RecordFailure(
            run_id=B_RUN_IDS[0],
            record_id="001BRAVOSECRET01",
            org_number="912345678",
            error_code="B",
            message="B-SECRET-ERROR-TEXT",
        )
    )


def _alert(connection_id: int, subject: str, now: dt.datetime, **extra: Any) -> Alert:
    return Alert(
        connection_id=connection_id,
        kind=AlertKind.RUN_FAILED.value,
        subject=subject,
        status=AlertStatus.OPEN.value,
        detected_at=now,
        opened_at=now,
        notify_by=now + dt.timedelta(minutes=30),
        details={},
        **extra,
    )


def _seed_alerts(session: Any, ids: dict[str, int], world: World, now: dt.datetime) -> None:
    for role in ("viewer", "operator", "admin"):
        alert = _alert(ids[A], f"alpha-{role}", now)
        session.add(alert)
        session.flush()
        world.a_alerts[role] = alert.id
    session.add(_alert(ids[B], "b-hidden-subject", now, id=B_ALERT_ID))


def build_world(spec_a: dict[str, Any] | None = None, secrets_a: dict[str, str] | None = None) -> World:
    """Connections A and B with runs, failures and alerts, and API keys of every role for A (plus one for B).

    Args:
        spec_a: A's connection file content (e.g. pointing at a sandbox); a placeholder one by default.
        secrets_a: A's secrets to store (none by default: then nothing can reach Salesforce).
    """
    world = World()
    now = utcnow()
    specs = {A: spec_a or spec_data(A), B: spec_data(B)}
    with session_scope() as session:
        ids = {
            name: apply_connection(session, parse_spec(data), "test").connection_id
            for name, data in specs.items()
        }
        for name, value in (secrets_a or {}).items():
            set_secret(session, A, name, value, "test")
    with session_scope() as session:
        _seed_a(session, ids[A], world, now)
        _seed_b(session, ids[B], now)
        _seed_alerts(session, ids, world, now)
    with session_scope() as session:
        for role in Role:
            world.keys[role.value] = create_key(session, connections=[A], role=role, actor="test").secret
        world.b_admin = create_key(session, connections=[B], role=Role.ADMIN, actor="test").secret
        revoked = create_key(session, connections=[A], role=Role.ADMIN, actor="test")
        revoke_key(session, revoked.id, "test")
        world.revoked = revoked.secret
    return world


@contextmanager
def ledger_env(**extra: str) -> Iterator[str]:
    """A migrated PostgreSQL ledger and a REGSYNC_* environment for a whole test module; yields its URL.

    Module-scoped on purpose: the API tests only read, or add rows they look up by id, so one database
    serves every test of a module (a fresh database per test costs ~1 s each).
    """
    from tests.conftest import clean_environment, fresh_pg_database

    with fresh_pg_database("regsync_api") as url, pytest.MonkeyPatch.context() as patch:
        upgrade(url)
        values = {"REGSYNC_DATABASE_URL": url, "REGSYNC_SECRET_KEY": Fernet.generate_key().decode()} | extra
        with clean_environment(patch, **values):
            yield url
