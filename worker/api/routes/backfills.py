"""POST /v1/connections/{c}/backfills: start a backfill or a dry run (202), or only estimate it (200)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from worker.api.backfill_request import BackfillRequest, estimate_view, salesforce, to_options
from worker.api.deps import Scoped, scoped
from worker.api.schemas import EstimateOut, Problem, RunDetail
from worker.api.views import run_detail
from worker.backfill.estimate import estimate
from worker.backfill.options import resolve_selection, start_backfill
from worker.connections.apply import load_connection
from worker.connections.preflight import require_secrets
from worker.ledger.db import session_scope
from worker.ledger.models import Run
from worker.roles import Role

router = APIRouter(tags=["backfills"])


@router.post(
    "/connections/{c}/backfills",
    status_code=202,
    response_model=None,
    responses={
        200: {"model": EstimateOut, "description": "estimate: true: what it would cost; nothing started."},
        202: {"model": RunDetail, "description": "The backfill run, queued."},
        409: {
            "model": Problem,
            "description": "The connection cannot reach Salesforce yet (secret missing).",
        },
        502: {"model": Problem, "description": "Salesforce answered with an error."},
    },
    summary="Start a backfill (or a dry run), or estimate one",
)
def create_backfill(
    request: Request,
    response: Response,
    body: BackfillRequest,
    scope: Annotated[Scoped, Depends(scoped(Role.OPERATOR))],
) -> RunDetail | EstimateOut:
    with session_scope() as session:
        _row, spec = load_connection(session, scope.name)
        require_secrets(session, scope.name)  # 409 naming the missing secret
    with salesforce(scope.id) if body.needs_salesforce() else nullcontext() as crm:
        options = to_options(body, spec, scope.id, crm)
        if body.estimate:
            assert crm is not None  # estimate needs Salesforce: opened above
            selection = resolve_selection(options, scope.id, spec)
            result = estimate(crm, selection, chunk_size=spec.sync.chunk_size, dry_run=body.dry_run)
            response.status_code = 200
            return EstimateOut.model_validate(estimate_view(scope.name, options, result))
    run_id = start_backfill(scope.name, options, actor=scope.who.actor, dispatch=request.app.state.dispatcher)
    with session_scope() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return RunDetail.model_validate(run_detail(session, run, scope.name))
