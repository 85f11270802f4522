"""A connection's audit trail, newest first and paged, with whether the installation's chain verifies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from worker.api.deps import ConnectionName
from worker.api.schemas import MAX_ID
from worker.console.auth import Viewing
from worker.console.queries import audit_page, chain_status
from worker.console.render import page
from worker.console.routes.common import scope
from worker.ledger.db import session_scope

router = APIRouter()
PAGE = 50


@router.get("/console/connections/{c}/audit")
def audit(
    request: Request, c: ConnectionName, visitor: Viewing,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:  # fmt: skip
    scoped = scope(visitor, c)
    with session_scope() as session:
        events, next_before = audit_page(session, scoped.id, c, before_id=before, limit=PAGE)
        chain = chain_status(session)
    return page(request, "audit.html", connection=c, events=events, next_before=next_before, chain=chain)
