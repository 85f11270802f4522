"""The beat tick (every 30 s): turn each enabled connection's due schedule slots into runs, exactly once.

The ledger's unique (connection, mode, scheduled_for) constraint is what makes a slot run once: two beats, a
restarted beat or a redelivered tick all try to insert the same row, and all but one get an IntegrityError.
A connection may have two schedules, one per run mode (the full reconcile and changes runs); each starts runs
of its mode, and its concurrency policy looks only at active runs of that mode (an hourly changes run neither
waits for nor cancels a long weekly reconcile).
Only the winner dispatches ``plan_run``. A run inserted but never dispatched (the process died in between)
stays ``queued`` and the sweeper sends it. The schedule's cursor only moves forward.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.infra.dispatch import Dispatcher
from worker.ledger import runs
from worker.ledger.db import session_scope
from worker.ledger.models import Connection, Run, RunKind, RunMode, RunStatus, utcnow
from worker.scheduling.cron import CronSchedule
from worker.scheduling.models import Concurrency, Schedule
from worker.scheduling.policy import MISSED, SlotDecision, decide

log = logging.getLogger(__name__)

#: At most this many due slots of one schedule are recorded per tick (the newest); older ones are dropped.
MAX_SLOTS_PER_TICK = 100
#: A schedule whose tick failed is looked at again after this long.
RETRY_AFTER = dt.timedelta(minutes=1)
TRIGGERED_BY = "schedule"
ACTIVE_STATES = (RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.PAUSED_BUDGET.value)


@dataclass(slots=True)
class TickReport:
    """What one tick did; ``lost`` counts slots another tick had already recorded."""

    schedules: int = 0
    started: int = 0
    skipped: int = 0
    missed: int = 0
    lost: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Due:
    schedule_id: int
    connection_id: int
    mode: RunMode
    cron: CronSchedule
    policy: Concurrency
    starting_deadline_s: int
    last_slot: dt.datetime
    slots: list[dt.datetime]
    active: list[int]


def due_slots(
    schedule: CronSchedule, last_slot: dt.datetime | None, now: dt.datetime, limit: int = MAX_SLOTS_PER_TICK
) -> list[dt.datetime]:
    """The slots in ``(last_slot, now]`` (the newest ``limit``), oldest first, in UTC; none without a cursor."""
    if last_slot is None:
        return []
    return schedule.slots_between(last_slot, now, limit)


def tick(dispatch: Dispatcher, now: dt.datetime | None = None) -> TickReport:
    """Record and start the due slots of every enabled connection's schedule.

    Args:
        dispatch: Sends ``plan_run`` for each run this tick started.
        now: The tick's time (tests and simulations pass their own clock).

    Returns:
        Counts of what this tick did. A schedule that fails is logged and retried a minute later.
    """
    now = now or utcnow()
    report = TickReport()
    for schedule_id in _due_schedule_ids(now):
        report.schedules += 1
        try:
            _tick_schedule(schedule_id, now, dispatch, report)
        except Exception:
            report.errors += 1
            log.exception("schedule tick failed", extra={"schedule_id": schedule_id})
            _postpone(schedule_id, now)
    return report


def _due_schedule_ids(now: dt.datetime) -> list[int]:
    query = (
        select(Schedule.id)
        .join(Connection, Connection.id == Schedule.connection_id)
        .where(Connection.enabled.is_(True), or_(Schedule.next_slot.is_(None), Schedule.next_slot <= now))
        .order_by(Schedule.next_slot)
    )
    with session_scope() as session:
        return list(session.scalars(query))


def _load(session: Session, schedule_id: int, now: dt.datetime) -> _Due | None:
    """The schedule, its due slots and its connection's active runs; None if gone or disabled meanwhile."""
    row = session.get(Schedule, schedule_id)
    if row is None:
        return None
    if not session.scalar(select(Connection.enabled).where(Connection.id == row.connection_id)):
        return None
    cron = CronSchedule(row.cron, row.timezone)
    last = row.last_slot or now
    active = select(Run.id).where(
        Run.connection_id == row.connection_id, Run.mode == row.mode, Run.status.in_(ACTIVE_STATES)
    )
    return _Due(
        schedule_id=row.id,
        connection_id=row.connection_id,
        mode=RunMode(row.mode),
        cron=cron,
        policy=Concurrency(row.concurrency_policy),
        starting_deadline_s=row.starting_deadline_s,
        last_slot=last,
        slots=due_slots(cron, last, now),
        active=list(session.scalars(active.order_by(Run.id))),
    )


def _tick_schedule(schedule_id: int, now: dt.datetime, dispatch: Dispatcher, report: TickReport) -> None:
    with session_scope() as session:
        due = _load(session, schedule_id, now)
    if due is None:
        return
    if len(due.slots) >= MAX_SLOTS_PER_TICK:
        log.warning(
            "more slots were due than one tick records; only the newest are recorded as missed",
            extra={
                "schedule_id": schedule_id,
                "recorded": len(due.slots),
                "since": due.last_slot.isoformat(),
            },
        )
    decisions = decide(
        due.slots,
        now,
        starting_deadline_s=due.starting_deadline_s,
        policy=due.policy,
        active_run_ids=due.active,
    )
    for decision in decisions:
        run_id = _record(due.connection_id, due.mode, decision)
        if run_id is None:
            report.lost += 1
        elif decision.run:
            dispatch.plan(run_id)
            report.started += 1
            slot = decision.slot.isoformat()
            log.info("scheduled run started", extra={"run_id": run_id, "mode": due.mode.value, "slot": slot})
        else:
            if decision.error_code == MISSED:
                report.missed += 1
            else:
                report.skipped += 1
            log.warning("schedule slot skipped", extra={"run_id": run_id, "reason": decision.reason})
    _advance(due, due.slots[-1] if due.slots else due.last_slot)


def _record(connection_id: int, mode: RunMode, decision: SlotDecision) -> int | None:
    """Insert the slot's run of ``mode`` (and cancel what it replaces); None when another tick already
    recorded it."""
    now = utcnow()
    run = Run(
        connection_id=connection_id,
        kind=RunKind.SCHEDULED.value,
        mode=mode.value,
        status=(RunStatus.QUEUED if decision.run else RunStatus.SKIPPED).value,
        triggered_by=TRIGGERED_BY,
        scheduled_for=decision.slot,
        options={},
        queued_at=now,
        finished_at=None if decision.run else now,
        error_code=decision.error_code,
        error=decision.reason,
    )
    try:
        with session_scope() as session:
            session.add(run)
            session.flush()  # the unique (connection_id, mode, scheduled_for) constraint decides here
            for active_id in decision.cancel:
                runs.request_cancel(session, active_id)
            return run.id
    except IntegrityError:
        log.debug("slot already recorded", extra={"slot": decision.slot.isoformat()})
        return None


def _advance(due: _Due, newest: dt.datetime) -> None:
    """Move the cursor to ``newest`` and the deadline to the slot after it, never backwards."""
    statement = (
        update(Schedule)
        .where(
            Schedule.id == due.schedule_id, or_(Schedule.last_slot.is_(None), Schedule.last_slot <= newest)
        )
        .values(last_slot=newest, next_slot=due.cron.next_slot(newest))
    )
    with session_scope() as session:
        session.execute(statement)


def _postpone(schedule_id: int, now: dt.datetime) -> None:
    try:
        with session_scope() as session:
            session.execute(
                update(Schedule).where(Schedule.id == schedule_id).values(next_slot=now + RETRY_AFTER)
            )
    except Exception:
        log.exception("could not postpone a failing schedule", extra={"schedule_id": schedule_id})
