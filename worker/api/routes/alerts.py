"""Alerts of the key's connections, and acknowledging one. TEMPORARY: 501 until worker/alerts lands."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from worker.api.deps import Caller, require
from worker.api.models import Role
from worker.api.problems import ApiError
from worker.api.schemas import MAX_ID, ErrorOut

router = APIRouter(
    tags=["alerts"], responses={501: {"model": ErrorOut, "description": "No alerting in this build."}}
)


def _missing() -> ApiError:
    return ApiError(501, "alerting is not part of this build of regsync yet")


@router.get("/alerts", summary="Alerts of your connections")
def list_alerts(who: Caller) -> None:
    raise _missing()


@router.post("/alerts/{alert_id}/ack", summary="Acknowledge an alert")
def ack_alert(alert_id: Annotated[int, Path(ge=1, le=MAX_ID)], who: Caller) -> None:
    require(who, Role.OPERATOR)
    raise _missing()
