"""The purge over HTTP: admins only, another tenant's connection is 404, and the audit event holds where the
call came from (client address, user agent, the key's id; never the key) inside its hash."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.integration.api_world import A, B, World, build_world, ledger_env
from tests.unit.fakes import FakeDispatcher
from worker.api.app import create_app
from worker.api.throttle import MemoryThrottle
from worker.ledger.audit import event_hash, verify_chain
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, Connection, RecordFailure, Run, utcnow
from worker.retention.purge import PURGE_ACTION

AGENT = "retention-test/1.0"


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[TestClient, World]]:
    with ledger_env():
        world = build_world()
        app = create_app(throttle=MemoryThrottle(10_000), dispatcher=FakeDispatcher())
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client, world


def _post(
    client: TestClient, key: str, connection: str, body: dict[str, object]
) -> tuple[int, dict[str, object]]:
    answer = client.post(
        f"/v1/connections/{connection}/retention/purge",
        json=body,
        headers={
            "Authorization": f"Bearer {key}",
            "User-Agent": AGENT,
            "X-Correlation-ID": "corr-0123456789",
        },
    )
    return answer.status_code, answer.json()


def _old_failure(world: World) -> None:
    """A failure of one of A's runs, past the default 90 days."""
    with session_scope() as session:
        run_id = session.scalars(select(Run.id).join(Connection).where(Connection.name == A).limit(1)).one()
        session.add(
            RecordFailure(
                run_id=run_id,
                record_id="001OLDFAILURE0001",
                error_code="X",
                message="m",
                created_at=utcnow() - dt.timedelta(days=100),
            )
        )


def test_an_operator_may_not_purge_and_another_tenant_is_not_found(api: tuple[TestClient, World]) -> None:
    client, world = api
    assert _post(client, world.keys["operator"], A, {"dry_run": True})[0] == 403
    assert _post(client, world.keys["admin"], B, {"dry_run": True})[0] == 404
    assert _post(client, world.keys["admin"], A, {"kinds": ["everything"]})[0] == 422


def test_an_api_purge_records_its_origin_inside_the_chain(api: tuple[TestClient, World]) -> None:
    client, world = api
    _old_failure(world)
    status, report = _post(client, world.keys["admin"], A, {"kinds": ["failures"]})

    assert status == 200, report
    assert report["counts"] == {"failures": 1}
    with session_scope() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == PURGE_ACTION)).one()
        assert verify_chain(session).ok
    assert event.context is not None
    assert event.context["via"] == "api" and event.context["user_agent"] == AGENT
    assert event.context["client"] == "testclient" and event.context["correlation_id"] == "corr-0123456789"
    assert event.context["api_key_id"].isdigit()
    assert world.keys["admin"] not in str(event.context)
    tampered = dict(event.context, client="10.0.0.1")
    kwargs = {"prev_hash": event.prev_hash, "at": event.at, "actor": event.actor, "action": event.action}
    kwargs |= {"target": event.target, "before": event.before, "after": event.after}
    assert event_hash(**kwargs, context=event.context) == event.hash  # type: ignore[arg-type]
    assert event_hash(**kwargs, context=tampered) != event.hash  # type: ignore[arg-type]
