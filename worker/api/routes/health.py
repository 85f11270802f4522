"""GET /v1/health: ledger, Redis, beat and worker heartbeats; 200 when all are fine, else 503.

No API key needed (load balancers and monitors call it) and nothing tenant-specific in it: counts and ages
only, no connection names, no host names, no URLs. Beat fails after REGSYNC_BEAT_GRACE_S without a heartbeat.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from worker.api.schemas import HealthOut
from worker.infra import health as checks

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "Something is down; the body says what."}},
    summary="Is regsync up: ledger, Redis, beat and workers",
)
def health(response: Response) -> dict[str, Any]:
    body = checks.check()
    response.status_code = 200 if body["status"] == "ok" else 503
    return body
