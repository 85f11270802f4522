"""The compliance report of a connection for a period, as the API serves it, on a printable page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from worker.alerts.report_html import RETENTION_HEADERS, retention_rows
from worker.alerts.report_text import CONNECTION_HEADERS, connection_rows, connection_warnings
from worker.api.deps import ConnectionName
from worker.api.routes import report as api_report
from worker.console.auth import Viewing
from worker.console.render import page
from worker.console.routes.common import scope

router = APIRouter()
PERIODS = {"24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days", "90d": "last 90 days"}
Since = Annotated[str, Query(pattern=r"^(24h|7d|30d|90d)$")]


@router.get("/console/connections/{c}/report")
def report(request: Request, c: ConnectionName, visitor: Viewing, since: Since = "30d") -> Response:
    data = api_report.get_compliance_report(scope(visitor, c), since)
    told = {
        "warnings": connection_warnings(data),
        "headers": [h.capitalize() for h in CONNECTION_HEADERS],
        "rows": connection_rows(data),
    }
    kept = {"headers": RETENTION_HEADERS, "rows": retention_rows(data), "erasures": data.get("erasures", 0)}
    return page(
        request, "report.html", connection=c, report=data, since=since, periods=PERIODS, told=told, kept=kept
    )
