"""A connection's settings: read them (viewer), change them (admin): enabled, and the alert thresholds.

Channels and escalation (webhook URLs, addresses) stay in the connection file: they are neither shown nor
changed here. Every change is audited by the domain functions called.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictBool
from sqlalchemy.orm import Session

from worker.alerts.config import NOTICE_MAX_MINUTES, AlertsSpec
from worker.alerts.notice_settings import set_alert_settings
from worker.api.deps import Scoped, scoped
from worker.api.schemas import Body
from worker.connections.apply import load_connection
from worker.connections.preflight import check_before_enable, check_stored
from worker.errors import NoAlertChannel
from worker.ledger.db import session_scope
from worker.roles import Role
from worker.scheduling.store import no_channel_message, schedule_view, set_enabled

router = APIRouter(tags=["settings"])


class AlertThresholds(Body):
    """The alert settings an admin may change here (bounds as in the connection file's [alerts])."""

    notice_period_minutes: int | None = Field(default=None, ge=1, le=NOTICE_MAX_MINUTES)
    partial_failure_threshold: float | None = Field(default=None, ge=0, le=1)
    missed_grace_minutes: int | None = Field(default=None, ge=0, le=24 * 60)
    stall_minutes: int | None = Field(default=None, ge=1, le=100_000)
    max_runtime_minutes: int | None = Field(default=None, ge=1, le=100_000)
    volume_share: float | None = Field(default=None, gt=0, le=100)
    volume_min_records: int | None = Field(default=None, ge=0, le=10_000_000)
    volume_min_history: int | None = Field(default=None, ge=1, le=10)
    budget_share: float | None = Field(default=None, gt=0, le=1)
    repeat: int | None = Field(default=None, ge=0, le=10)


class SettingsPatch(Body):
    """What to change; fields left out stay as they are."""

    enabled: StrictBool | None = Field(
        default=None, description="Whether scheduled runs start by themselves."
    )
    without_notices: StrictBool = Field(
        default=False,
        description="Enable a connection that has no alert channel (nobody is told when its runs fail); audited.",
    )
    alerts: AlertThresholds | None = None


class AlertSettingsOut(BaseModel):
    notice_period_minutes: int
    partial_failure_threshold: float
    missed_grace_minutes: int | None
    stall_minutes: int
    max_runtime_minutes: int
    volume_share: float
    volume_min_records: int
    volume_min_history: int
    budget_share: float
    repeat: int


class SettingsOut(BaseModel):
    connection: str
    enabled: bool
    schedule: dict[str, Any] | None
    alerts: AlertSettingsOut


def _settings(session: Session, name: str) -> dict[str, Any]:
    view = schedule_view(session, name)
    row, _spec = load_connection(session, name)
    alerts = AlertsSpec.model_validate(row.spec.get("alerts") or {}).model_dump(mode="json")
    return {"connection": name, "enabled": view["enabled"], "schedule": view["schedule"], "alerts": alerts}


@router.get("/connections/{c}/settings", response_model=SettingsOut, summary="A connection's settings")
def get_settings(scope: Annotated[Scoped, Depends(scoped(Role.VIEWER))]) -> dict[str, Any]:
    with session_scope() as session:
        return _settings(session, scope.name)


@router.patch(
    "/connections/{c}/settings", response_model=SettingsOut, summary="Change a connection's settings"
)
def patch_settings(
    body: SettingsPatch, scope: Annotated[Scoped, Depends(scoped(Role.ADMIN))]
) -> dict[str, Any]:
    if body.enabled:
        _check_before_enable(scope.name)
    with session_scope() as session:
        if body.alerts is not None:
            # null means "no change", except for the one setting whose null is a value (use the schedule's grace)
            changes = {
                key: value
                for key, value in body.alerts.model_dump(exclude_unset=True).items()
                if value is not None or key == "missed_grace_minutes"
            }
            if changes:
                set_alert_settings(
                    session, scope.name, changes, actor=scope.who.actor, role=scope.who.role.value
                )
        if body.enabled is not None:
            _set_enabled(session, scope.name, body, scope.who.actor)
    with session_scope() as session:
        return _settings(session, scope.name)


def _set_enabled(session: Session, name: str, body: SettingsPatch, actor: str) -> None:
    """set_enabled, refusing (422 NO_ALERT_CHANNEL) to enable a connection nobody would hear from."""
    assert body.enabled is not None
    try:
        set_enabled(session, name, body.enabled, actor, without_notices=body.without_notices)
    except NoAlertChannel:
        raise NoAlertChannel(no_channel_message(name, '"without_notices": true')) from None


def _check_before_enable(name: str) -> None:
    """As `regsync enable`: 409 naming a missing secret, 422 for a mapping that does not fit or (where the
    connection requires least privilege) excess rights; Salesforce is asked outside any ledger transaction."""
    with session_scope() as session:
        spec, credential = check_stored(session, name)
    check_before_enable(spec, credential)
