"""Name matches on the review page: approve a chosen candidate or reject, one by one or the ticked ones in bulk.

Decisions go through the API's own handlers (``worker.api.routes.matches``), so they are scoped, written and
audited exactly as there. Every id of a form is checked before the first one is decided.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from worker.api.deps import ConnectionName
from worker.api.problems import ApiError
from worker.api.routes import matches as api_matches
from worker.api.schemas import MAX_ID, MAX_PAGE
from worker.console.auth import Acting, Form, first
from worker.console.routes.common import after_action, scope
from worker.roles import Role

router = APIRouter()


def match_ids(fields: dict[str, list[str]]) -> list[int]:
    """The matches a form decides: the row's own button (``one``), else every ticked box (``match_ids``)."""
    values = fields.get("one") or fields.get("match_ids") or []
    try:
        ids = list(dict.fromkeys(int(value) for value in values))
    except ValueError:
        ids = []
    if not 1 <= len(ids) <= MAX_PAGE or not all(1 <= i <= MAX_ID for i in ids):
        raise ApiError(422, f"choose at least one name match (and at most {MAX_PAGE}) to decide")
    return ids


def _choice(fields: dict[str, list[str]], match_id: int) -> api_matches.ApproveIn:
    """The candidate ticked in the match's row (its org number); none ticked takes the best, as the CLI."""
    picked = first(fields, f"pick-{match_id}")
    return api_matches.ApproveIn(org_number=picked[:32] or None)


def _checked(c: str, visitor: Acting, fields: Form) -> list[int]:
    """The form's match ids, each one of this connection's (404 otherwise) and the visitor an operator."""
    connection_id = scope(visitor, c, Role.OPERATOR).id
    ids = match_ids(fields)
    for match_id in ids:
        api_matches.owned(match_id, visitor.who, connection_id)
    return ids


@router.post("/console/connections/{c}/review/matches/approve")
def approve(c: ConnectionName, visitor: Acting, fields: Form) -> Response:
    for match_id in _checked(c, visitor, fields):
        api_matches.approve(match_id, visitor.who, _choice(fields, match_id))
    return after_action(f"/console/connections/{c}/review", "matched")


@router.post("/console/connections/{c}/review/matches/reject")
def reject(c: ConnectionName, visitor: Acting, fields: Form) -> Response:
    for match_id in _checked(c, visitor, fields):
        api_matches.reject(match_id, visitor.who)
    return after_action(f"/console/connections/{c}/review", "unmatched")
