"""POST /v1/connections/{c}/backfills: start a backfill (or a dry run, or just an estimate)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from worker.api.deps import Scoped, scoped
from worker.api.models import Role
from worker.api.schemas import Body, RunDetail
from worker.api.views import run_detail
from worker.ledger.db import session_scope
from worker.ledger.models import Run, RunKind
from worker.runner import start_run

router = APIRouter(tags=["backfills"])


class BackfillRequest(Body):
    """What to backfill (placeholder until the backfill options land)."""

    dry_run: bool = False


@router.post(
    "/connections/{c}/backfills", response_model=RunDetail, status_code=202, summary="Start a backfill"
)
def create_backfill(
    request: Request, body: BackfillRequest, scope: Annotated[Scoped, Depends(scoped(Role.OPERATOR))]
) -> dict[str, object]:
    run_id = start_run(
        scope.name,
        request.app.state.dispatcher,
        triggered_by=scope.who.actor,
        kind=RunKind.BACKFILL,
        options=body.model_dump(),
    )
    with session_scope() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run_detail(run, scope.name)
