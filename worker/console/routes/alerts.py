"""Alerts of the key's connections: open ones with their notice deadline, past ones, and acknowledging."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from worker.api.routes import alerts as api_alerts
from worker.api.schemas import MAX_ID, MAX_PAGE
from worker.console.auth import Acting, Viewing
from worker.console.render import page
from worker.console.routes.common import after_action

router = APIRouter()
Show = Annotated[str, Query(pattern=r"^(open|past)$")]


@router.get("/console/alerts")
def alerts(request: Request, visitor: Viewing, show: Show = "open") -> Response:
    found: list[dict[str, Any]] = api_alerts.get_alerts(
        visitor.who, connection=None, open_only=show == "open", limit=MAX_PAGE
    )["items"]
    if show == "past":
        found = [alert for alert in found if alert["status"] == "resolved"]
    return page(request, "alerts.html", alerts=found, show=show, said=request.query_params.get("said"))


@router.post("/console/alerts/{alert_id}/ack")
def acknowledge(alert_id: Annotated[int, Path(ge=1, le=MAX_ID)], visitor: Acting) -> Response:
    api_alerts.acknowledge(alert_id, visitor.who)  # the API's own action: scope, role, audit
    return after_action("/console/alerts", "ack")
