"""Every API action is audited with where it came from: client address, user agent, the API key's id (never the
key) and the correlation id, inside the event's hash; requests do not leak their origin into each other."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.integration.api_world import World, build_world, ledger_env
from tests.unit.fakes import FakeDispatcher
from worker.api.app import create_app
from worker.api.keys import hash_key
from worker.api.models import ApiKey
from worker.api.throttle import MemoryThrottle
from worker.ledger.audit import append_event, verify_chain
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent
from worker.ledger.origin import current_origin

AGENT = "origin-test/2.1 (ops laptop)"
CORRELATION = "corr-origin-0001"


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[TestClient, World]]:
    with ledger_env():
        world = build_world()
        app = create_app(throttle=MemoryThrottle(10_000), dispatcher=FakeDispatcher())
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client, world


def _post(client: TestClient, key: str, path: str, agent: str = AGENT) -> int:
    headers = {"Authorization": f"Bearer {key}", "User-Agent": agent, "X-Correlation-ID": CORRELATION}
    return int(client.post(path, headers=headers).status_code)


def _key_id(raw: str) -> int:
    with session_scope() as session:
        return int(session.scalars(select(ApiKey.id).where(ApiKey.key_hash == hash_key(raw))).one())


def _event(action: str) -> AuditEvent:
    with session_scope() as session:
        assert verify_chain(session).ok
        return session.scalars(select(AuditEvent).where(AuditEvent.action == action)).one()


def test_an_alert_ack_through_the_api_records_its_origin(api: tuple[TestClient, World]) -> None:
    client, world = api
    key = world.keys["operator"]

    assert _post(client, key, f"/v1/alerts/{world.a_alerts['operator']}/ack") == 200

    event = _event("alert.ack")
    assert event.context == {
        "via": "api",
        "client": "testclient",
        "user_agent": AGENT,
        "api_key_id": str(_key_id(key)),
        "correlation_id": CORRELATION,
    }
    row = repr((event.actor, event.target, event.before, event.after, event.context))
    assert key not in row and key[-12:] not in row  # the key's id, never the key


def test_a_run_cancel_records_its_own_origin_and_none_leaks_between_requests(
    api: tuple[TestClient, World],
) -> None:
    client, world = api
    key = world.keys["admin"]

    assert _post(client, key, f"/v1/runs/{world.a_cancellable['admin']}/cancel", agent="second/1.0") == 200

    event = _event("run.cancel")
    assert event.context is not None
    assert (event.context["user_agent"], event.context["api_key_id"]) == ("second/1.0", str(_key_id(key)))
    assert current_origin() is None  # the request's origin stayed in the request
    with session_scope() as session:  # an event appended outside a request has no API origin
        assert append_event(session, actor="test", action="test.outside", target="x").context is None
