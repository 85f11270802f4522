"""A read-only picture of the ledger that the detectors judge: per connection, its settings, runs and schedule.

Detectors are pure functions of this snapshot and ``now``; only :func:`load_snapshot` touches the database.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.alerts.config import AlertsSpec
from worker.ledger.models import FINAL_RUN_STATES, Connection, Run
from worker.scheduling.cron import CronSchedule
from worker.scheduling.models import Schedule

log = logging.getLogger(__name__)

#: Final runs kept per connection: the newest, plus ten to take the median of, plus slack for skipped ones.
FINAL_RUNS_KEPT = 25
#: Slots per schedule looked at (the newest due one decides; older ones are counted in the details).
SLOTS_KEPT = 20


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the detectors know about one run (counts and times only)."""

    id: int
    kind: str
    status: str
    queued_at: dt.datetime
    scheduled_for: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    heartbeat_at: dt.datetime | None = None
    error_code: str | None = None
    planned: int = 0
    invalid: int = 0
    failed: int = 0
    updated: int = 0
    api_used_after: int | None = None
    api_limit: int | None = None
    mode: str = "full"

    @classmethod
    def of(cls, run: Run) -> RunFacts:
        return cls(
            id=run.id,
            kind=run.kind,
            status=run.status,
            queued_at=run.queued_at,
            mode=run.mode,
            scheduled_for=run.scheduled_for,
            started_at=run.started_at,
            finished_at=run.finished_at,
            heartbeat_at=run.heartbeat_at,
            error_code=run.error_code,
            planned=run.planned,
            invalid=run.invalid,
            failed=run.failed,
            updated=run.updated,
            api_used_after=run.api_used_after,
            api_limit=run.api_limit,
        )


@dataclass(frozen=True, slots=True)
class ScheduleFacts:
    """An enabled connection's schedule: its grace, and the slots up to now the beat tick has not handled.

    Slots the tick handled have a run (started, queued, or ``skipped``); ``unhandled_slots`` (oldest first)
    start at the schedule's ``next_slot`` and are what a stopped beat leaves behind.
    """

    schedule_id: int
    grace: dt.timedelta
    unhandled_slots: tuple[dt.datetime, ...] = ()
    #: What its runs read (``full`` or ``changes``): its slots are met by runs of the same mode only.
    mode: str = "full"


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """One connection as the detectors see it. ``runs`` are newest first (by queue time)."""

    connection_id: int
    name: str
    enabled: bool
    settings: AlertsSpec
    runs: tuple[RunFacts, ...] = ()
    #: Its schedules (a full reconcile and a changes schedule may both exist); empty while it is disabled.
    schedules: tuple[ScheduleFacts, ...] = ()
    settings_error: str | None = field(default=None)


def alert_settings(spec: dict[str, object]) -> AlertsSpec:
    """The ``[alerts]`` table of a stored connection spec (defaults when absent)."""
    raw = spec.get("alerts") or {}
    return AlertsSpec.model_validate(raw)


def _settings(connection: Connection) -> tuple[AlertsSpec, str | None]:
    try:
        return alert_settings(connection.spec), None
    except ValueError as exc:  # a bad row must not stop the loop: judge it with the defaults
        log.warning("alert settings of connection %s unreadable; using defaults", connection.name)
        return AlertsSpec(), type(exc).__name__


def _runs(session: Session, connection_id: int) -> tuple[RunFacts, ...]:
    base = select(Run).where(Run.connection_id == connection_id)
    final = [status.value for status in FINAL_RUN_STATES]
    active = session.scalars(base.where(Run.status.not_in(final)))
    recent = session.scalars(
        base.where(Run.status.in_(final)).order_by(Run.queued_at.desc(), Run.id.desc()).limit(FINAL_RUNS_KEPT)
    )
    rows = {run.id: run for run in [*active, *recent]}
    ordered = sorted(rows.values(), key=lambda r: (r.queued_at, r.id), reverse=True)
    return tuple(RunFacts.of(run) for run in ordered)


def _schedules(
    session: Session, connection: Connection, settings: AlertsSpec, now: dt.datetime
) -> tuple[ScheduleFacts, ...]:
    if not connection.enabled:
        return ()
    rows = session.scalars(
        select(Schedule).where(Schedule.connection_id == connection.id).order_by(Schedule.id)
    )
    return tuple(_facts(row, settings, now) for row in rows)


def _facts(row: Schedule, settings: AlertsSpec, now: dt.datetime) -> ScheduleFacts:
    grace_s = row.grace_s if settings.missed_grace_minutes is None else settings.missed_grace_minutes * 60
    pending = row.next_slot
    slots: tuple[dt.datetime, ...] = ()
    if pending is not None and pending <= now:
        later = CronSchedule(row.cron, row.timezone).slots_between(pending, now, limit=SLOTS_KEPT)
        slots = (pending, *later)
    return ScheduleFacts(row.id, dt.timedelta(seconds=grace_s), slots, row.mode)


def load_snapshot(session: Session, now: dt.datetime) -> list[ConnectionState]:
    """Every connection with its alert settings, active and recent runs, and (when enabled) its schedule."""
    states = []
    for connection in session.scalars(select(Connection).order_by(Connection.id)):
        settings, error = _settings(connection)
        try:
            schedules = _schedules(session, connection, settings, now)
        except Exception:  # an unreadable schedule is logged, not fatal to the other detectors
            log.exception("schedule of connection %s unreadable", connection.name)
            schedules = ()
        states.append(
            ConnectionState(
                connection.id,
                connection.name,
                connection.enabled,
                settings,
                _runs(session, connection.id),
                schedules,
                error,
            )
        )
    return states
