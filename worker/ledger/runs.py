"""Run lifecycle in the ledger: create, start, plan progress, abort, cancel and close, all compare-and-set."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Protocol

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from worker.errors import RunNotFound
from worker.ledger.counters import Counts
from worker.ledger.db import updated_one
from worker.ledger.models import Run, RunKind, RunMode, RunStatus, utcnow

log = logging.getLogger(__name__)


def create_run(
    session: Session,
    connection_id: int,
    *,
    kind: RunKind,
    triggered_by: str,
    scheduled_for: dt.datetime | None = None,
    options: dict[str, Any] | None = None,
    mode: RunMode = RunMode.FULL,
) -> Run:
    """Insert a queued run of ``mode`` (the (connection, mode, scheduled_for) unique constraint refuses a second
    one per slot)."""
    run = Run(
        connection_id=connection_id,
        kind=kind.value,
        mode=mode.value,
        status=RunStatus.QUEUED.value,
        triggered_by=triggered_by,
        scheduled_for=scheduled_for,
        options=options or {},
        queued_at=utcnow(),
    )
    session.add(run)
    session.flush()
    return run


def get_run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise RunNotFound(f"no run {run_id}; list runs with `regsync runs list`")
    return run


def transition(session: Session, run_id: int, old: RunStatus, new: RunStatus, **values: Any) -> bool:
    """Move a run from ``old`` to ``new`` only if it is still ``old``; True when exactly this call did it."""
    result = session.execute(
        update(Run).where(Run.id == run_id, Run.status == old.value).values(status=new.value, **values)
    )
    return updated_one(result)


def claim_planning(session: Session, run_id: int, lease_s: int, now: dt.datetime) -> Run | None:
    """Start (queued → running) or resume (running, plan lease expired) planning; None if someone else plans.

    Each claim counts in ``plan_attempts``, which is also the planner's token: its heartbeats and commits check it.
    """
    lease = now + dt.timedelta(seconds=lease_s)
    started = transition(
        session,
        run_id,
        RunStatus.QUEUED,
        RunStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        plan_lease_until=lease,
        plan_attempts=Run.plan_attempts + 1,
    )
    if not started:
        resumed = session.execute(
            update(Run)
            .where(
                Run.id == run_id,
                Run.status == RunStatus.RUNNING.value,
                Run.planned_complete.is_(False),
                (Run.plan_lease_until.is_(None)) | (Run.plan_lease_until < now),
            )
            .values(plan_lease_until=lease, plan_attempts=Run.plan_attempts + 1)
        )
        if not updated_one(resumed):
            return None
    return session.execute(select(Run).where(Run.id == run_id)).scalar_one()


def _planner_is(run_id: int, attempt: int) -> Any:
    return (
        (Run.id == run_id)
        & (Run.plan_attempts == attempt)
        & Run.status.in_([RunStatus.RUNNING.value, RunStatus.PAUSED_BUDGET.value])
        & Run.planned_complete.is_(False)
    )


def extend_planning(session: Session, run_id: int, attempt: int, lease_s: int, now: dt.datetime) -> bool:
    """The planner's heartbeat: extend its lease; False if another planner took the run over (or it ended)."""
    result = session.execute(
        update(Run)
        .where(_planner_is(run_id, attempt))
        .values(plan_lease_until=now + dt.timedelta(seconds=lease_s), heartbeat_at=now)
    )
    return updated_one(result)


def release_planning(session: Session, run_id: int, attempt: int) -> bool:
    """Give planning back after a transient failure, so that the retry can claim it at once."""
    result = session.execute(update(Run).where(_planner_is(run_id, attempt)).values(plan_lease_until=None))
    return updated_one(result)


def abort_run(session: Session, run_id: int, code: str, message: str) -> None:
    """Record why a run cannot go on; its remaining chunks are dropped and it closes as failed."""
    session.execute(
        update(Run).where(Run.id == run_id, Run.error_code.is_(None)).values(error_code=code, error=message)
    )


def fail_run(
    session: Session,
    run_id: int,
    code: str,
    message: str,
    now: dt.datetime,
    *,
    listener: RunClosedListener | None = None,
) -> bool:
    """Fail a run at once: record why, cancel its queued chunks and close it (compare-and-set on a run that is
    not final yet). Chunks still running finish their attempt and still add their counts. True if this call
    failed it; ``listener`` (the caller's dispatcher: alert evaluation) hears of it once the transaction
    committed.
    """
    from worker.ledger.chunks import cancel_queued

    run = session.execute(select(Run).where(Run.id == run_id).with_for_update(key_share=True)).scalar_one()
    if RunStatus(run.status).final:
        return False
    cancelled = cancel_queued(session, run_id, now, f"run failed: {code}")
    session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(
            status=RunStatus.FAILED.value,
            error_code=code,
            error=message,
            finished_at=now,
            heartbeat_at=now,
            plan_lease_until=None,
            chunks_done=Run.chunks_done + cancelled,
        )
    )
    _announce_when_committed(session, run_id, listener)
    return True


def request_cancel(session: Session, run_id: int) -> bool:
    """Ask a queued or running run to stop: queued chunks are dropped, running chunks finish."""
    run = get_run(session, run_id)
    if RunStatus(run.status).final:
        return False
    session.execute(update(Run).where(Run.id == run_id).values(cancel_requested=True))
    return True


def add_chunk_result(
    session: Session, run_id: int, counts: Counts, now: dt.datetime, *, api_used: int | None = None
) -> None:
    """Add one finished chunk's counts to its run with a SQL counter (no read-modify-write, no chord).

    Args:
        api_used: the org's API usage as the chunk last read it; the run keeps the newest (``api_used_after``).
    """
    sums = {name: getattr(Run, name) + value for name, value in counts.columns().items()}
    session.execute(
        update(Run).where(Run.id == run_id).values(chunks_done=Run.chunks_done + 1, heartbeat_at=now, **sums)
    )
    if api_used is not None:
        used = api_used
        newer = Run.api_used_after.is_(None) | (Run.api_used_after < used)
        session.execute(update(Run).where(Run.id == run_id, newer).values(api_used_after=used))


def record_api_limit(session: Session, run_id: int, used: int | None, limit: int | None) -> None:
    """Keep the org's daily API limit as last measured: the limit read with the newest usage reading (the one
    ``add_chunk_result`` kept in ``api_used_after``). An admin may raise it while a run waits for budget."""
    if used is None or limit is None:
        return
    session.execute(update(Run).where(Run.id == run_id, Run.api_used_after == used).values(api_limit=limit))


def final_status(run: Run) -> RunStatus:
    """The outcome of a run whose chunks are all final."""
    if run.error_code:
        return RunStatus.FAILED
    if run.cancel_requested:
        return RunStatus.CANCELLED
    problems = run.failed + run.invalid
    if problems == 0:
        return RunStatus.SUCCEEDED
    if problems >= run.planned:
        return RunStatus.FAILED
    return RunStatus.PARTIALLY_FAILED


def maybe_close(
    session: Session, run_id: int, now: dt.datetime, *, listener: RunClosedListener | None = None
) -> RunStatus | None:
    """Close the run if planning is complete and every chunk is final; the status it closed with, else None.
    ``listener`` (the caller's dispatcher) hears of the close once the transaction committed."""
    # FOR NO KEY UPDATE (key_share): a plain FOR UPDATE also waits for the KEY SHARE lock that another chunk's
    # record_failures insert (foreign key to runs) holds, while that chunk waits for our counter UPDATE: deadlock.
    run = session.execute(select(Run).where(Run.id == run_id).with_for_update(key_share=True)).scalar_one()
    if (
        run.status != RunStatus.RUNNING.value
        or not run.planned_complete
        or run.chunks_done < run.chunks_total
    ):
        return None
    status = final_status(run)
    if not transition(session, run_id, RunStatus.RUNNING, status, finished_at=now, heartbeat_at=now):
        return None
    session.refresh(run)
    _announce_when_committed(session, run_id, listener)
    return status


class RunClosedListener(Protocol):
    """Hears of a closed run once its transaction committed (worker.infra.dispatch.Dispatcher is one)."""

    def run_closed(self, run_id: int) -> None: ...


def _announce_when_committed(session: Session, run_id: int, listener: RunClosedListener | None) -> None:
    """Tell ``listener`` (alert evaluation) once the closing transaction has committed; a failure is logged."""
    if listener is None:
        return

    def announce(_session: Session) -> None:
        try:
            listener.run_closed(run_id)
        except Exception:
            log.warning("run-closed listener failed", exc_info=True, extra={"run_id": run_id})

    event.listen(session, "after_commit", announce, once=True)


def duration_s(run: Run) -> float | None:
    if run.started_at is None:
        return None
    end = run.finished_at or utcnow()
    return round((end - run.started_at).total_seconds(), 3)
