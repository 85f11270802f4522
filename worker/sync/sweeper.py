"""The sweeper: finds work that was lost (a killed worker, a restarted Redis) and sends it again.

Safe to run anywhere, any time: every resend is claimed by compare-and-set, so a duplicate is a no-op.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from config.settings import Settings, get_settings
from worker.errors import ChunkLost, PlannerLost, RegsyncError
from worker.infra.dispatch import Dispatcher
from worker.infra.shared_state import row_tag
from worker.ledger import chunks, runs
from worker.ledger.db import session_scope, updated_one
from worker.ledger.models import Chunk, ChunkStatus, Run, RunStatus, utcnow
from worker.sync.pump_start import PumpStarter, pump_wanted
from worker.sync.send_tally import charge_dead_attempt, retire

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SweepReport:
    expired_chunks: int = 0
    stalled_chunks: int = 0
    plans_resent: int = 0
    runs_closed: int = 0
    runs_resumed: int = 0
    chunks_given_up: int = 0  # lost again and again: out of attempts, their records failed (CHUNK_LOST)
    runs_failed: int = 0  # planner lost again and again: out of plan attempts (PLANNER_LOST)
    pumps_resent: int = (
        0  # registry pumps whose lease ran out (died, stopped on an error, or paused and resumed)
    )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def sweep(
    dispatch: Dispatcher, *, settings: Settings | None = None, now: dt.datetime | None = None
) -> SweepReport:
    """Resend chunks whose lease expired or whose run stalled, resume dead planners, close finished runs.

    Bounded: a chunk or a planner lost as often as its retry budget allows (``chunk_max_attempts``,
    ``plan_max_attempts`` claims) is not resent but given up, its records failed or its run failed.
    """
    settings = settings or get_settings()
    now = now or utcnow()
    report = SweepReport()
    report.chunks_given_up = _give_up_lost_chunks(now, settings, dispatch)
    report.runs_failed = _fail_lost_planners(now, settings, dispatch)
    with session_scope() as session:
        expired = _expired_chunks(session, now, settings)
        stalled = _stalled_chunks(session, now, settings)
        plans = _lost_plans(session, now, settings)
        report.runs_closed = _close_finished(session, now, dispatch)
        resumed = _resume_paused(session, now, settings)
        plans += _unfinished_plans(session, list(resumed))
        pumps = _lost_pumps(session, now, settings) if isinstance(dispatch, PumpStarter) else []
    report.expired_chunks, report.stalled_chunks, report.plans_resent = len(expired), len(stalled), len(plans)
    report.runs_resumed, report.pumps_resent = len(resumed), len(pumps)
    unpaused = [chunk_id for ids in resumed.values() for chunk_id in ids]
    if expired or stalled or unpaused:
        dispatch.sync(expired + stalled + unpaused)
    for run_id in plans:
        dispatch.plan(run_id)
    for run_id in pumps:
        assert isinstance(dispatch, PumpStarter)
        dispatch.pump(run_id)
    if any(report.as_dict().values()):
        log.info("sweep resent lost work", extra=report.as_dict())
    return report


def _resume_paused(session: Session, now: dt.datetime, settings: Settings) -> dict[int, list[int]]:
    """Runs paused for API budget that may go on (worker.budget); a Redis failure only postpones them."""
    from worker.budget.control import resume_when_allowed

    try:
        return resume_when_allowed(session, settings, now)
    except RegsyncError as exc:
        log.warning("paused runs not checked: %s", exc.message)
        return {}


def _out_of_attempts(settings: Settings, now: dt.datetime) -> ColumnElement[bool]:
    return (
        (Chunk.status == ChunkStatus.RUNNING.value)
        & (Chunk.lease_until < now)
        & (Chunk.attempt >= settings.chunk_max_attempts)
    )


def _give_up_lost_chunks(now: dt.datetime, settings: Settings, dispatch: Dispatcher) -> int:
    """Expired chunks without an attempt left: their records fail (CHUNK_LOST) instead of another resend."""
    from worker.sync.chunk import give_up

    with session_scope() as session:
        claims = [
            chunks.claim_of(session, chunk)
            for chunk in session.execute(select(Chunk).where(_out_of_attempts(settings, now))).scalars()
        ]
    lost = ChunkLost()
    for claim in claims:
        message = f"{lost.message} (attempt {claim.attempt} of {settings.chunk_max_attempts})"
        calls = retire(settings, claim.run_tag, claim.chunk_id, claim.attempt)
        give_up(claim, lost.code, message, registry_calls=calls, dispatch=dispatch)
    return len(claims)


def _fail_lost_planners(now: dt.datetime, settings: Settings, dispatch: Dispatcher) -> int:
    """Runs whose planner died with no plan attempt left fail (PLANNER_LOST) instead of another resend."""
    lost = PlannerLost()
    failed = 0
    with session_scope() as session:
        query = select(Run.id, Run.plan_attempts).where(
            Run.status == RunStatus.RUNNING.value,
            Run.planned_complete.is_(False),
            Run.plan_lease_until < now,
            Run.plan_attempts >= settings.plan_max_attempts,
        )
        for run_id, attempts in session.execute(query).all():
            message = f"{lost.message} (attempt {attempts} of {settings.plan_max_attempts})"
            failed += runs.fail_run(session, run_id, lost.code, message, now, listener=dispatch)
    return failed


def _unfinished_plans(session: Session, run_ids: list[int]) -> list[int]:
    """Resumed runs whose planning was paused too: their planner must be sent again."""
    if not run_ids:
        return []
    query = select(Run.id).where(Run.id.in_(run_ids), Run.planned_complete.is_(False))
    return list(session.execute(query).scalars())


def _expired_chunks(session: Session, now: dt.datetime, settings: Settings) -> list[int]:
    """Running chunks whose worker stopped heart-beating (killed, or lost its connection), put back in the queue.

    Queued again rather than left running: the resend claims it at once, the next sweeps do not resend it again
    while it waits behind other chunks, and an old attempt that wakes up finds the chunk no longer its own. The
    dead attempt's registry calls are added to its run here (worker.sync.send_tally), in the requeue's transaction.
    """
    expired = (Chunk.status == ChunkStatus.RUNNING.value) & (Chunk.lease_until < now)
    rows = session.execute(
        select(Chunk.id, Chunk.attempt, Run.id, Run.queued_at)
        .join(Run, Run.id == Chunk.run_id)
        .where(expired)
    ).all()
    requeue = {"status": ChunkStatus.QUEUED.value, "lease_until": None, "enqueued_at": now}
    ids = []
    for chunk_id, attempt, run_id, queued_at in rows:
        mine = session.execute(
            update(Chunk).where(Chunk.id == chunk_id, Chunk.attempt == attempt, expired).values(**requeue)
        )
        if updated_one(mine):
            tag = row_tag(run_id, queued_at)
            charge_dead_attempt(session, settings, run_id, run_tag=tag, chunk_id=chunk_id, attempt=attempt)
            ids.append(chunk_id)
    return ids


def _stalled_chunks(session: Session, now: dt.datetime, settings: Settings) -> list[int]:
    """Queued chunks of runs that made no progress for a while: their messages were probably lost."""
    cutoff = now - dt.timedelta(seconds=settings.chunk_requeue_after_s)
    query = (
        select(Chunk.id)
        .join(Run, Run.id == Chunk.run_id)
        .where(
            Chunk.status == ChunkStatus.QUEUED.value,
            Chunk.enqueued_at < cutoff,
            Run.status == RunStatus.RUNNING.value,
            Run.heartbeat_at < cutoff,
        )
    )
    ids = list(session.execute(query).scalars())
    if ids:
        session.execute(update(Chunk).where(Chunk.id.in_(ids)).values(enqueued_at=now))
    return ids


def _lost_plans(session: Session, now: dt.datetime, settings: Settings) -> list[int]:
    """Runs queued too long (plan message lost) or whose planner died mid-way (plan lease expired)."""
    cutoff = now - dt.timedelta(seconds=settings.chunk_requeue_after_s)
    never_started = (
        (Run.status == RunStatus.QUEUED.value)
        & (Run.queued_at < cutoff)
        & (Run.plan_lease_until.is_(None) | (Run.plan_lease_until < cutoff))
    )
    lease_expired = Run.plan_lease_until < now
    # Resent (lease cleared below) and nothing happened since: the resent message was lost too.
    resend_lost = Run.plan_lease_until.is_(None) & (Run.heartbeat_at < cutoff)
    planner_died = (
        (Run.status == RunStatus.RUNNING.value)
        & Run.planned_complete.is_(False)
        & (lease_expired | resend_lost)
    )
    ids = list(session.execute(select(Run.id).where(never_started | planner_died)).scalars())
    if ids:
        # Remember the resend so that a still-queued run is not resent on every tick.
        session.execute(
            update(Run)
            .where(Run.id.in_(ids), Run.status == RunStatus.QUEUED.value)
            .values(plan_lease_until=now)
        )
        # A running run's resend clears its plan lease: claimable at once, not resent again while it waits.
        session.execute(
            update(Run)
            .where(Run.id.in_(ids), Run.status == RunStatus.RUNNING.value, lease_expired)
            .values(plan_lease_until=None)
        )
    return ids


def _lost_pumps(session: Session, now: dt.datetime, settings: Settings) -> list[int]:
    """Running runs whose registry pump died or stopped (lease ran out), or whose first pump message was lost.

    Resent like a dead planner, from its cursor; a pump out of attempts is not (chunks fetch for themselves).
    """
    if not pump_wanted(settings):
        return []
    cutoff = now - dt.timedelta(seconds=settings.chunk_requeue_after_s)
    never_started = (Run.pump_attempts == 0) & (Run.pump_lease_until.is_(None)) & (Run.heartbeat_at < cutoff)
    lease_expired = Run.pump_lease_until < now
    # Resent (lease cleared below) and nobody claimed it since: the resent message was lost too.
    resend_lost = (Run.pump_attempts > 0) & Run.pump_lease_until.is_(None) & (Run.heartbeat_at < cutoff)
    pumpable = (
        (Run.status == RunStatus.RUNNING.value)
        & Run.pump_done.is_(False)
        & Run.cancel_requested.is_(False)
        & (Run.chunks_total > 0)
        & (Run.pump_attempts < settings.plan_max_attempts)
    )
    ids = list(
        session.execute(
            select(Run.id).where(pumpable & (never_started | lease_expired | resend_lost))
        ).scalars()
    )
    if ids:  # claimable at once, and not resent on every tick while the message waits behind chunks
        session.execute(update(Run).where(Run.id.in_(ids)).values(pump_lease_until=None))
    return ids


def _close_finished(session: Session, now: dt.datetime, dispatch: Dispatcher) -> int:
    query = select(Run.id).where(
        Run.status == RunStatus.RUNNING.value,
        Run.planned_complete.is_(True),
        Run.chunks_done >= Run.chunks_total,
    )
    closed = (
        runs.maybe_close(session, run_id, now, listener=dispatch)
        for run_id in session.execute(query).scalars()
    )
    return sum(1 for status in closed if status)
