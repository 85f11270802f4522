"""Chunk lifecycle: insert while planning, claim with a lease, heartbeat, release, finish; compare-and-set."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, select, update
from sqlalchemy.orm import Session

from worker.infra.shared_state import row_tag
from worker.ledger.counters import Counts
from worker.ledger.db import updated_count, updated_one
from worker.ledger.models import Chunk, ChunkStatus, RecordFailure, Run, RunStatus


def add_chunks(
    session: Session,
    run: Run,
    batches: Sequence[Sequence[str]],
    now: dt.datetime,
    keys: Sequence[Sequence[str]] | None = None,
) -> list[int]:
    """Insert one queued chunk per batch of record Ids and count them on the run; returns the chunk ids.

    Args:
        keys: per batch, its unique planned org numbers (``CC:orgnr``) for the registry pump (worker.sync.pump).
    """
    first_seq = run.chunks_total
    ids: list[int] = []
    for offset, record_ids in enumerate(batches):
        org_keys = list(keys[offset]) if keys is not None else None
        chunk = Chunk(
            run_id=run.id,
            seq=first_seq + offset,
            record_ids=list(record_ids),
            org_keys=org_keys,
            enqueued_at=now,
        )
        session.add(chunk)
        session.flush()
        ids.append(chunk.id)
    session.execute(update(Run).where(Run.id == run.id).values(chunks_total=Run.chunks_total + len(ids)))
    return ids


@dataclass(frozen=True, slots=True)
class Claim:
    """A chunk this process now owns for one attempt."""

    chunk_id: int
    run_id: int
    attempt: int
    record_ids: list[str]
    connection_id: int
    run_stopping: bool
    options: dict[str, Any] = field(default_factory=dict)  # the run's options (backfill filters, dry run)
    #: The run waits for API budget: hand the chunk back untouched (worker.budget.control.hand_back).
    run_paused: bool = False
    #: Names the run in shared state (Redis keys): its id and queue time (worker.infra.shared_state.row_tag).
    run_tag: str = ""
    #: This claim took the chunk over from an attempt whose lease ran out (that attempt died or froze).
    took_over: bool = False


def claim(session: Session, chunk_id: int, lease_s: int, now: dt.datetime) -> Claim | None:
    """queued → running (or take over a running chunk whose lease expired); None when not claimable."""
    queued = Chunk.status == ChunkStatus.QUEUED.value
    expired = (Chunk.status == ChunkStatus.RUNNING.value) & (Chunk.lease_until < now)
    for claimable, took_over in ((queued, False), (expired, True)):
        result = session.execute(
            update(Chunk)
            .where(Chunk.id == chunk_id, claimable)
            .values(
                status=ChunkStatus.RUNNING.value,
                attempt=Chunk.attempt + 1,
                started_at=func.coalesce(Chunk.started_at, now),
                lease_until=now + dt.timedelta(seconds=lease_s),
            )
        )
        if updated_one(result):
            chunk = session.execute(select(Chunk).where(Chunk.id == chunk_id)).scalar_one()
            return replace(claim_of(session, chunk), took_over=took_over)
    return None


def claim_of(session: Session, chunk: Chunk) -> Claim:
    """The claim of ``chunk``'s current attempt (to finish or give up an attempt this process did not make)."""
    run = session.execute(select(Run).where(Run.id == chunk.run_id)).scalar_one()
    paused = run.status == RunStatus.PAUSED_BUDGET.value
    stopping = (
        bool(run.error_code) or run.cancel_requested or (run.status != RunStatus.RUNNING.value and not paused)
    )
    options = dict(run.options or {})
    return Claim(
        chunk.id,
        run.id,
        chunk.attempt,
        list(chunk.record_ids),
        run.connection_id,
        stopping,
        options,
        run_paused=paused,
        run_tag=row_tag(run.id, run.queued_at),
    )


def _this_attempt(claim_: Claim) -> ColumnElement[bool]:
    """The chunk row while ``claim_``'s attempt still runs it (another attempt may have taken it over)."""
    return and_(
        Chunk.id == claim_.chunk_id,
        Chunk.attempt == claim_.attempt,
        Chunk.status == ChunkStatus.RUNNING.value,
    )


def heartbeat(session: Session, claim_: Claim, lease_s: int, now: dt.datetime) -> bool:
    """Extend this attempt's lease; False if another attempt took the chunk over."""
    result = session.execute(
        update(Chunk).where(_this_attempt(claim_)).values(lease_until=now + dt.timedelta(seconds=lease_s))
    )
    session.execute(update(Run).where(Run.id == claim_.run_id).values(heartbeat_at=now))
    return updated_one(result)


def release(session: Session, claim_: Claim, error: str) -> bool:
    """Give a chunk back to the queue after a transient failure so that a retry can claim it."""
    result = session.execute(
        update(Chunk)
        .where(_this_attempt(claim_))
        .values(status=ChunkStatus.QUEUED.value, lease_until=None, error=error)
    )
    return updated_one(result)


def finish(
    session: Session,
    claim_: Claim,
    status: ChunkStatus,
    now: dt.datetime,
    *,
    counts: Counts,
    error: str | None = None,
) -> bool:
    """running → done|failed|cancelled for this attempt only, storing its ``counts``; False if another attempt
    finished it."""
    result = session.execute(
        update(Chunk)
        .where(_this_attempt(claim_))
        .values(status=status.value, finished_at=now, lease_until=None, error=error, **counts.columns())
    )
    return updated_one(result)


def cancel_queued(session: Session, run_id: int, now: dt.datetime, reason: str) -> int:
    """Cancel a run's queued chunks (its run failed); returns how many, to add to the run's ``chunks_done``."""
    result = session.execute(
        update(Chunk)
        .where(Chunk.run_id == run_id, Chunk.status == ChunkStatus.QUEUED.value)
        .values(status=ChunkStatus.CANCELLED.value, finished_at=now, lease_until=None, error=reason)
    )
    return updated_count(result)


@dataclass(frozen=True, slots=True)
class Failure:
    """One record that could not be synced; ``message`` is already sanitised (no values, no secrets)."""

    record_id: str
    org_number: str | None
    error_code: str
    message: str


def add_failures(
    session: Session, run_id: int, chunk_id: int | None, failures: Sequence[Failure], attempt: int = 1
) -> None:
    """Record per-record failures of a run (one row per record; the unique key refuses duplicates)."""
    if not failures:
        return
    session.execute(
        insert(RecordFailure),
        [
            {
                "run_id": run_id,
                "chunk_id": chunk_id,
                "record_id": f.record_id,
                "org_number": f.org_number,
                "error_code": f.error_code,
                "message": f.message[:500],
                "attempt": attempt,
            }
            for f in failures
        ],
    )
