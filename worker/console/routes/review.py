"""The review queue of a connection: changes and name matches waiting for a person, approved or rejected one by
one or in bulk (name-match decisions: ``review_matches``).

Decisions go through the API's own handlers, so they are checked, written and audited exactly as there.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from worker.api import pagination
from worker.api.deps import ConnectionName
from worker.api.problems import ApiError
from worker.api.routes import changes as api_changes
from worker.api.routes import matches as api_matches
from worker.changes.models import ChangeOutcome
from worker.console.auth import Acting, Form, Viewing
from worker.console.render import page
from worker.console.routes.common import after_action, scope
from worker.matching.models import MatchStatus
from worker.roles import Role

router = APIRouter()
Cursor = Annotated[str | None, Query(pattern=pagination.PATTERN)]


@router.get("/console/connections/{c}/review")
def review(
    request: Request, c: ConnectionName, visitor: Viewing, cursor: Cursor = None, match_cursor: Cursor = None
) -> Response:
    seen = scope(visitor, c)
    found = api_changes.list_changes(scope=seen, status=ChangeOutcome.REVIEW, cursor=cursor, limit=100)
    matches = api_matches.list_matches(scope=seen, status=MatchStatus.REVIEW, cursor=match_cursor, limit=100)
    return page(
        request, "review.html", connection=c, changes=found["items"], next_cursor=found["next_cursor"],
        matches=matches["items"], next_match_cursor=matches["next_cursor"], said=request.query_params.get("said"),
    )  # fmt: skip


def _decision(fields: dict[str, list[str]]) -> api_changes.DecisionIn:
    """The events a form decides: the row's own button (``one``), else every ticked box (``ids``)."""
    ids = fields.get("one") or fields.get("ids") or []
    try:
        return api_changes.DecisionIn(ids=[int(value) for value in ids])
    except (ValueError, ValidationError):
        raise ApiError(422, "choose at least one change (and at most 200) to decide") from None


@router.post("/console/connections/{c}/review/approve")
def approve(c: ConnectionName, visitor: Acting, fields: Form) -> Response:
    api_changes.approve(_decision(fields), scope(visitor, c, Role.OPERATOR))
    return after_action(f"/console/connections/{c}/review", "approved")


@router.post("/console/connections/{c}/review/reject")
def reject(c: ConnectionName, visitor: Acting, fields: Form) -> Response:
    api_changes.reject(_decision(fields), scope(visitor, c, Role.OPERATOR))
    return after_action(f"/console/connections/{c}/review", "rejected")
