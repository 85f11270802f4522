"""Name matches of a connection, and their review: list (viewer), approve a candidate or reject (operator,
audited as `regsync matches` is). Another connection's match id is answered as one that does not exist."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, Field

from worker.api import pagination
from worker.api.deps import Caller, Scoped, require, scoped
from worker.api.keys import Principal
from worker.api.problems import foreign, not_found
from worker.api.schemas import MAX_ID, MAX_PAGE, Problem
from worker.api.schemas import Body as StrictBody
from worker.changes.review import connection_crm
from worker.ledger.db import session_scope
from worker.matching import review, store
from worker.matching.models import MatchStatus, NameMatch
from worker.roles import Role

router = APIRouter(tags=["matches"])

MatchId = Annotated[int, Path(ge=1, le=MAX_ID, description="Name match id.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size (at most {MAX_PAGE}).")]
Cursor = Annotated[
    str | None, Query(pattern=pagination.PATTERN, description="next_cursor of the previous page.")
]


class CandidateOut(BaseModel):
    """A company the registry's name search found (registry data), with its score against the record."""

    country: str
    org_number: str
    name: str
    legal_form: str | None = None
    postal_code: str | None = None
    city: str | None = None
    score: float = Field(description="0..1: name similarity, legal form, postal code and city.")


class MatchOut(BaseModel):
    """What a name search found for one record without a valid org number, and what was decided."""

    id: int
    run_id: int | None
    record_id: str
    object: str = Field(description="The Salesforce object, e.g. `Lead`.")
    country: str
    status: MatchStatus
    reason: str | None = Field(description="Why it waits for a person (or was skipped).")
    crm_name: str | None = Field(description="The CRM's company name (only while it waits in review).")
    candidates: list[CandidateOut] = Field(description="Best first; `index` in an approval counts from 0.")
    org_number: str | None = Field(description="The org number written (auto or approved).")
    decided_by: str | None
    decided_at: dt.datetime | None
    created_at: dt.datetime


class MatchPage(BaseModel):
    items: list[MatchOut]
    next_cursor: str | None


class ApproveIn(StrictBody):
    """The candidate to take: by its org number or by its index in `candidates` (not both: 409, as a choice
    that is not a candidate); neither takes the best, as `regsync matches approve` does."""

    org_number: str | None = Field(default=None, min_length=1, max_length=32)
    index: int | None = Field(default=None, ge=0, le=MAX_PAGE)


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The match is decided already, or the choice is not a candidate."}
}


@router.get("/connections/{c}/matches", response_model=MatchPage, summary="Name matches, newest first")
def list_matches(
    *,
    scope: Annotated[Scoped, Depends(scoped(Role.VIEWER))],
    status: Annotated[
        MatchStatus | None, Query(description="Only matches in this state, e.g. `review`.")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict[str, object]:
    with session_scope() as session:
        rows, more = store.page(
            session, scope.id, status=status, after_id=pagination.decode(cursor), limit=limit
        )
        items = [review.match_view(row) for row in rows]
    next_cursor = pagination.encode(rows[-1].id) if more and rows else None
    return {"items": items, "next_cursor": next_cursor}


@router.post(
    "/matches/{match_id}/approve",
    response_model=MatchOut,
    responses={**_CONFLICT, 502: {"model": Problem, "description": "Salesforce answered with an error."}},
    summary="Approve a name match: the chosen candidate's org number is written into the record",
)
def approve(
    match_id: MatchId, who: Caller, body: Annotated[ApproveIn | None, Body()] = None
) -> dict[str, object]:
    choice = body or ApproveIn()
    connection_id = owned(match_id, who)
    with connection_crm(connection_id) as (spec, crm):
        review.approve(
            spec, connection_id, match_id, org_number=choice.org_number, index=choice.index,
            actor=who.actor, crm=crm,
        )  # fmt: skip
    return _decided(match_id)


@router.post(
    "/matches/{match_id}/reject",
    response_model=MatchOut,
    responses=_CONFLICT,
    summary="Reject a name match: nothing is written, and the record is not asked again until its name changes",
)
def reject(match_id: MatchId, who: Caller) -> dict[str, object]:
    review.reject(owned(match_id, who), match_id, who.actor)
    return _decided(match_id)


def owned(match_id: int, who: Principal, connection_id: int | None = None) -> int:
    """The connection holding ``match_id`` if ``who`` may decide it: 404 for none, 404 counted as a probe for
    another tenant's (or, given ``connection_id``, another connection's), then 403 below operator."""
    with session_scope() as session:
        holder = review.connection_of(session, match_id)
    if holder is None:
        raise not_found("name match")
    if not who.sees(holder):
        raise foreign("name match")
    if connection_id not in (None, holder):
        raise not_found("name match")  # one of the key's own connections, just not this one
    require(who, Role.OPERATOR)
    return holder


def _decided(match_id: int) -> dict[str, object]:
    with session_scope() as session:
        row = session.get(NameMatch, match_id)
        if row is None:  # its connection was deleted a moment ago
            raise not_found("name match")
        return review.match_view(row)
