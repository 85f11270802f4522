"""Change events of a connection, and the review queue: list (viewer), approve and reject (operator, audited)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from worker.api import pagination
from worker.api.deps import Scoped, scoped
from worker.api.problems import foreign
from worker.api.schemas import MAX_ID, MAX_PAGE, Body, Problem
from worker.changes import review
from worker.changes.models import ChangeOutcome, ChangeType
from worker.errors import ChangeNotFound
from worker.ledger.db import session_scope
from worker.roles import Role

router = APIRouter(tags=["changes"])

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size (at most {MAX_PAGE}).")]
Cursor = Annotated[
    str | None, Query(pattern=pagination.PATTERN, description="next_cursor of the previous page.")
]


class ChangeOut(BaseModel):
    """What one change did to one field of one record; values only while it waits in review."""

    id: int
    run_id: int | None
    source: str = Field(description="`feed:brreg:NO`, `feed:proff:NO`, or `run:full`.")
    item_id: str = Field(description="The feed's id of the change (or the full run's id).")
    change_type: ChangeType
    country: str
    org_number: str
    record_id: str | None
    field: str | None = Field(description="The canonical field, e.g. `name`.")
    outcome: ChangeOutcome
    reason: str | None
    old_value: Any = Field(description="The CRM's value the change would replace (only while in review).")
    new_value: Any = Field(description="The registry's value (only while in review).")
    decided_by: str | None
    decided_at: dt.datetime | None
    created_at: dt.datetime


class ChangePage(BaseModel):
    items: list[ChangeOut]
    next_cursor: str | None


class DecidedOut(BaseModel):
    items: list[ChangeOut] = Field(description="The events as they stand after the decision.")


class DecisionIn(Body):
    """The change events to decide: all must be this connection's and waiting in review (or decided the same
    way already, which changes nothing)."""

    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(min_length=1, max_length=MAX_PAGE)


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "An event was decided otherwise, or is being decided."}
}


@router.get("/connections/{c}/changes", response_model=ChangePage, summary="Change events, newest first")
def list_changes(
    *,
    scope: Annotated[Scoped, Depends(scoped(Role.VIEWER))],
    status: Annotated[ChangeOutcome | None, Query(description="Only events with this outcome.")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict[str, object]:
    with session_scope() as session:
        rows, more = review.list_events(
            session, scope.id, status=status, after_id=pagination.decode(cursor), limit=limit
        )
        items = [review.event_view(row) for row in rows]
    next_cursor = pagination.encode(rows[-1].id) if more and rows else None
    return {"items": items, "next_cursor": next_cursor}


@router.post(
    "/connections/{c}/changes/approve",
    response_model=DecidedOut,
    responses={**_CONFLICT, 502: {"model": Problem, "description": "Salesforce answered with an error."}},
    summary="Approve changes in review: written only if the CRM still holds the value each event saw",
)
def approve(body: DecisionIn, scope: Annotated[Scoped, Depends(scoped(Role.OPERATOR))]) -> dict[str, object]:
    with _owned():
        with session_scope() as session:
            review.require_own(session, scope.id, body.ids)  # before Salesforce is asked anything
        with review.connection_crm(scope.id) as (spec, crm):
            review.approve(spec, scope.id, body.ids, scope.who.actor, crm)
    return _decided(body.ids)


@router.post(
    "/connections/{c}/changes/reject",
    response_model=DecidedOut,
    responses=_CONFLICT,
    summary="Reject changes in review: the CRM is left alone",
)
def reject(body: DecisionIn, scope: Annotated[Scoped, Depends(scoped(Role.OPERATOR))]) -> dict[str, object]:
    with _owned(), session_scope() as session:
        review.reject(session, (scope.id, scope.name), body.ids, scope.who.actor)
    return _decided(body.ids)


@contextmanager
def _owned() -> Iterator[None]:
    """Another connection's event id is answered like one that does not exist (and counted as a probe)."""
    try:
        yield
    except ChangeNotFound:
        raise foreign("change event") from None


def _decided(ids: list[int]) -> dict[str, object]:
    with session_scope() as session:
        return {"items": [review.event_view(row) for row in review.events_by_id(session, ids)]}
