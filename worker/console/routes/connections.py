"""The start page: each connection of the key, with its last run, next slot, open alerts and API use today."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from worker.console.auth import PREFIX, Viewing
from worker.console.queries import connection_overview
from worker.console.render import page
from worker.ledger.db import session_scope

router = APIRouter()


@router.get("/console")
def home() -> Response:
    return RedirectResponse(f"{PREFIX}/connections", status_code=303)


@router.get("/console/connections")
def connections(request: Request, visitor: Viewing) -> Response:
    settings = request.app.state.settings
    with session_scope() as session:
        cards = [
            connection_overview(session, cid, name, settings)
            for cid, name in sorted(visitor.who.connections.items(), key=lambda item: item[1])
        ]
    return page(request, "connections.html", cards=cards)
