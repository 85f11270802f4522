"""The compliance report of one connection (viewer): the same data as `regsync report compliance --json`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from worker.alerts.report import compliance_report, parse_since
from worker.api.deps import Scoped, scoped
from worker.ledger.db import session_scope
from worker.ledger.models import utcnow
from worker.roles import Role

router = APIRouter(tags=["report"])

Since = Annotated[
    str,
    Query(
        pattern=r"^\d{1,9}[mhdw]$",
        description="The period ending now: a number and a unit, e.g. 30d, 12h, 90m or 2w (at most 3660 days).",
    ),
]


@router.get(
    "/connections/{c}/report/compliance",
    summary="Compliance report: runs needing attention and why, who is told, notices, audit-chain head",
)
def get_compliance_report(
    scope: Annotated[Scoped, Depends(scoped(Role.VIEWER))], since: Since = "30d"
) -> dict[str, Any]:
    period = parse_since(since, "since")
    with session_scope() as session:
        report = compliance_report(session, utcnow(), period, [scope.name])
    # The audit chain is the installation's: its head proves integrity, but how many events it holds would tell
    # one tenant how busy the others are.
    report["audit_chain"].pop("checked", None)
    return report
