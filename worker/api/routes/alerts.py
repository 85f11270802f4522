"""Alerts of the key's connections (newest first) and acknowledging one (operator); others' alerts are 404."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from worker.alerts.models import Alert
from worker.alerts.queries import ack_alert, list_alerts
from worker.api.deps import Caller, require
from worker.api.problems import foreign, not_found
from worker.api.schemas import CONNECTION_NAME, MAX_ID, MAX_PAGE, Problem
from worker.ledger.db import session_scope
from worker.roles import Role

router = APIRouter(tags=["alerts"])


class AlertOut(BaseModel):
    """An alert: what, of which connection and run, and where it is in open → notified → acknowledged →
    resolved."""

    id: int
    connection: str
    kind: str
    subject: str
    status: str
    run_id: int | None
    detected_at: dt.datetime | None
    opened_at: dt.datetime | None
    notify_by: dt.datetime | None
    notified_at: dt.datetime | None
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    escalation_level: int
    escalate_at: dt.datetime | None
    resolved_at: dt.datetime | None
    details: dict[str, Any]


class AlertList(BaseModel):
    items: list[AlertOut]


@router.get("/alerts", response_model=AlertList, summary="Alerts of your connections, newest first")
def get_alerts(
    who: Caller,
    connection: Annotated[
        str | None, Query(pattern=CONNECTION_NAME, description="Only this connection's alerts.")
    ] = None,
    open_only: Annotated[bool, Query(description="Only unresolved alerts.")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"At most this many (≤ {MAX_PAGE}).")] = 50,
) -> dict[str, Any]:
    scope = set(who.connections)
    if connection is not None:
        connection_id = who.connection_id(connection)
        if connection_id is None:
            raise not_found("connection")
        scope = {connection_id}
    with session_scope() as session:
        items = list_alerts(session, open_only=open_only, connection_ids=scope, limit=limit)
    return {"items": items}


@router.post(
    "/alerts/{alert_id}/ack",
    response_model=AlertOut,
    responses={409: {"model": Problem, "description": "The alert is acknowledged or resolved already."}},
    summary="Acknowledge an alert: its escalation stops",
)
def acknowledge(alert_id: Annotated[int, Path(ge=1, le=MAX_ID)], who: Caller) -> dict[str, Any]:
    with session_scope() as session:
        alert = session.get(Alert, alert_id)
        if alert is None or alert.connection_id is None:  # an operator alert is no tenant's
            raise not_found("alert")
        if not who.sees(alert.connection_id):
            raise foreign("alert")
        require(who, Role.OPERATOR)
        return ack_alert(session, alert_id, who.actor)
