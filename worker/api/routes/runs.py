"""Runs of a connection, one run with progress and ETA, its failures, and cancelling it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from worker.api import pagination
from worker.api.deps import Caller, Scoped, require, scoped
from worker.api.schemas import (
    MAX_ID,
    MAX_PAGE,
    CancelOut,
    FailurePage,
    Problem,
    RunDetail,
    RunPage,
    UtcDatetime,
)
from worker.api.views import page_of_failures, page_of_runs, run_detail, run_out, scoped_run
from worker.ledger.audit import append_event
from worker.ledger.cancel import cancel_run
from worker.ledger.db import session_scope
from worker.ledger.models import RunKind, RunStatus, utcnow
from worker.roles import Role

router = APIRouter(tags=["runs"])

RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="Run id.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size (at most {MAX_PAGE}).")]
Cursor = Annotated[
    str | None, Query(pattern=pagination.PATTERN, description="next_cursor of the previous page.")
]


@router.get("/connections/{c}/runs", response_model=RunPage, summary="Runs of a connection, newest first")
def list_runs(
    *,
    scope: Annotated[Scoped, Depends(scoped(Role.VIEWER))],
    status: Annotated[RunStatus | None, Query(description="Only runs in this state.")] = None,
    kind: Annotated[RunKind | None, Query(description="Only runs of this kind.")] = None,
    since: Annotated[UtcDatetime | None, Query(description="Only runs queued at or after this time.")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict[str, object]:
    after = pagination.decode(cursor)
    with session_scope() as session:
        rows, more = page_of_runs(
            session, scope.id, status=status, kind=kind, since=since, after_id=after, limit=limit
        )
        items = [run_out(run, scope.name) for run in rows]
    next_cursor = pagination.encode(rows[-1].id) if more and rows else None
    return {"items": items, "next_cursor": next_cursor}


@router.get("/runs/{run_id}", response_model=RunDetail, summary="One run, with chunk progress and ETA")
def get_run(run_id: RunId, who: Caller) -> dict[str, object]:
    with session_scope() as session:
        run, name = scoped_run(session, run_id, who)
        return run_detail(session, run, name)


ErrorCode = Annotated[
    str | None,
    Query(pattern=r"^[A-Z0-9_]{1,64}$", description="Only rows with this code, e.g. REGISTRY_DELETED."),
]


@router.get("/runs/{run_id}/failures", response_model=FailurePage, summary="Records a run could not sync")
def list_failures(
    run_id: RunId, who: Caller, cursor: Cursor = None, limit: Limit = 100, code: ErrorCode = None
) -> dict[str, object]:
    after = pagination.decode(cursor)
    with session_scope() as session:
        scoped_run(session, run_id, who)
        items, last = page_of_failures(session, run_id, after_id=after, limit=limit, code=code)
    return {"items": items, "next_cursor": pagination.encode(last) if last else None}


@router.post(
    "/runs/{run_id}/cancel",
    response_model=CancelOut,
    responses={409: {"model": Problem, "description": "The run already ended."}},
    summary="Cancel a run: queued chunks are dropped, running chunks finish",
)
def cancel(run_id: RunId, who: Caller) -> dict[str, object]:
    with session_scope() as session:
        run, name = scoped_run(session, run_id, who)
        require(who, Role.OPERATOR)
        result = cancel_run(session, run_id, utcnow())
        append_event(
            session,
            actor=who.actor,
            action="run.cancel",
            target=f"run:{run_id}",
            before={"status": result.before},
            after={"status": result.after, "chunks_dropped": result.chunks_dropped},
        )
        session.refresh(run)
        return {"run": run_out(run, name), "before": result.before, "chunks_dropped": result.chunks_dropped}
