"""Runs: the filterable list, a run's page with live progress, its failures by code, cancel and resume."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from worker.alerts.report import parse_since
from worker.api import pagination
from worker.api.deps import ConnectionName, require
from worker.api.routes import runs as api_runs
from worker.api.schemas import MAX_ID
from worker.api.views import page_of_failures, scoped_run
from worker.budget.control import resume_by_admin
from worker.console.auth import Acting, Viewing
from worker.console.queries import failure_groups
from worker.console.render import page
from worker.console.routes.common import after_action, choice, scope
from worker.ledger.db import session_scope
from worker.ledger.models import RunKind, RunStatus, utcnow
from worker.roles import Role

router = APIRouter()

RunId = Annotated[int, Path(ge=1, le=MAX_ID)]
Cursor = Annotated[str | None, Query(pattern=pagination.PATTERN)]
PERIODS = {"": "any time", "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days"}
Period = Annotated[str, Query(pattern=r"^(|24h|7d|30d)$")]


@router.get("/console/connections/{c}/runs")
def runs_list(
    *,
    request: Request, c: ConnectionName, visitor: Viewing, status: str | None = None,
    kind: str | None = None, period: Period = "", cursor: Cursor = None,
) -> Response:  # fmt: skip
    since = utcnow() - parse_since(period, "period") if period else None
    found = api_runs.list_runs(
        scope=scope(visitor, c), status=choice(RunStatus, status), kind=choice(RunKind, kind), since=since,
        cursor=cursor, limit=50,
    )  # fmt: skip
    return page(
        request, "runs.html", connection=c, runs=found["items"], next_cursor=found["next_cursor"],
        statuses=list(RunStatus), kinds=list(RunKind), periods=PERIODS,
        chosen={"status": status or "", "kind": kind or "", "period": period},
    )  # fmt: skip


@router.get("/console/runs/{run_id}")
def run_page(request: Request, run_id: RunId, visitor: Viewing) -> Response:
    run = api_runs.get_run(run_id, visitor.who)
    with session_scope() as session:
        groups = failure_groups(session, run_id, per_code=5)
    return page(request, "run.html", run=run, groups=groups, said=request.query_params.get("said"))


@router.get("/console/runs/{run_id}/progress")
def run_progress(request: Request, run_id: RunId, visitor: Viewing) -> Response:
    """The progress panel alone, polled by the run page while the run is not final."""
    return page(request, "_progress.html", run=api_runs.get_run(run_id, visitor.who))


CodeFilter = Annotated[str | None, Query(pattern=r"^[A-Z0-9_]{1,64}$")]


@router.get("/console/runs/{run_id}/failures")
def failures(
    request: Request, run_id: RunId, visitor: Viewing, code: CodeFilter = None, cursor: Cursor = None
) -> Response:
    with session_scope() as session:
        _, name = scoped_run(session, run_id, visitor.who)
        groups = failure_groups(session, run_id, per_code=0)
        items, last = page_of_failures(
            session, run_id, after_id=pagination.decode(cursor), limit=100, code=code
        )
    next_cursor = pagination.encode(last) if last else None
    return page(
        request, "failures.html", run_id=run_id, connection=name, groups=groups, items=items, code=code,
        next_cursor=next_cursor,
    )  # fmt: skip


@router.post("/console/runs/{run_id}/cancel")
def cancel(run_id: RunId, visitor: Acting) -> Response:
    api_runs.cancel(run_id, visitor.who)  # the API's own action: scope, role, audit
    return after_action(f"/console/runs/{run_id}", "cancel")


@router.post("/console/runs/{run_id}/resume")
def resume(request: Request, run_id: RunId, visitor: Acting) -> Response:
    """As `regsync runs resume`: audited by the same domain function, the queued chunks are sent again."""
    with session_scope() as session:
        scoped_run(session, run_id, visitor.who)
        require(visitor.who, Role.OPERATOR)
        result = resume_by_admin(session, run_id, visitor.who.actor, request.app.state.settings, utcnow())
    request.app.state.dispatcher.sync(result["chunk_ids"])
    return after_action(f"/console/runs/{run_id}", "resume")
