"""Issue 12, acceptance 5 through the HTTP API: PATCH settings with ``enabled: true`` refuses a connection with
no alert channel (422 NO_ALERT_CHANNEL, in the API's words) unless ``without_notices: true``, which is audited."""

from __future__ import annotations

import json

from sqlalchemy import select

from tests.integration.api_world import A
from tests.integration.test_api_roles import Api, api
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent

__all__ = ["api"]  # the fixture, imported to be used here


def enable_events() -> list[dict[str, object] | None]:
    with session_scope() as session:
        query = (
            select(AuditEvent.after).where(AuditEvent.action == "connection.enable").order_by(AuditEvent.id)
        )
        return list(session.scalars(query))


def test_api_enable_without_a_channel_is_422_unless_without_notices(api: Api) -> None:
    key, path = api.world.keys["admin"], f"/v1/connections/{A}/settings"
    assert api.call(key, "PATCH", path, {"enabled": False})[0] == 200
    before = enable_events()

    status, raw = api.call(key, "PATCH", path, {"enabled": True, "alerts": {"notice_period_minutes": 61}})
    problem = json.loads(raw)
    assert (status, problem["code"]) == (422, "NO_ALERT_CHANNEL"), raw
    assert '"without_notices": true' in problem["detail"] and "--without" not in problem["detail"]
    not_bool, _ = api.call(key, "PATCH", path, {"enabled": True, "without_notices": "yes"})
    settings = json.loads(api.call(key, "GET", path)[1])
    assert not_bool == 422
    assert (
        settings["enabled"] is False and settings["alerts"]["notice_period_minutes"] != 61
    )  # nothing applied
    assert enable_events() == before

    status, raw = api.call(key, "PATCH", path, {"enabled": True, "without_notices": True})
    assert status == 200 and json.loads(raw)["enabled"] is True, raw
    assert enable_events() == [*before, {"enabled": True, "without_notices": True}]
