"""Cancelling a run: queued chunks are dropped now, running chunks finish, the run ends ``cancelled``.

Every step is compare-and-set, so a worker that claims a chunk at the same moment either gets it (and its
chunk finishes and counts) or finds it cancelled (and does nothing). A planner still streaming sees the
request at its next commit and stops; a run no planner has started yet is cancelled on the spot, and so is a
run paused for API budget once nothing of it is running.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from worker.errors import StateConflict
from worker.ledger import runs
from worker.ledger.db import updated_count
from worker.ledger.models import Chunk, ChunkStatus, Run, RunStatus


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What a cancel request did: the status before and after, and how many queued chunks it dropped."""

    before: str
    after: str
    chunks_dropped: int


def cancel_run(session: Session, run_id: int, now: dt.datetime) -> CancelResult:
    """Ask run ``run_id`` to stop and drop what has not started.

    Raises:
        RunNotFound: No such run.
        StateConflict: The run already ended.
    """
    before = runs.get_run(session, run_id).status
    if not runs.request_cancel(session, run_id):
        raise StateConflict(f"run {run_id} already ended ({before}); nothing to cancel")
    if runs.transition(
        session, run_id, RunStatus.QUEUED, RunStatus.CANCELLED, finished_at=now, heartbeat_at=now
    ):
        return CancelResult(before, RunStatus.CANCELLED.value, 0)
    dropped = _drop_queued_chunks(session, run_id, now)
    # A run paused for API budget would wait for a window only to find nothing left to do: close it now.
    runs.transition(session, run_id, RunStatus.PAUSED_BUDGET, RunStatus.RUNNING, error=None, heartbeat_at=now)
    session.expire_all()  # the run was loaded above; maybe_close must see the counters just updated
    closed = runs.maybe_close(session, run_id, now)
    after = closed.value if closed is not None else runs.get_run(session, run_id).status
    return CancelResult(before, after, dropped)


def _drop_queued_chunks(session: Session, run_id: int, now: dt.datetime) -> int:
    result = session.execute(
        update(Chunk)
        .where(Chunk.run_id == run_id, Chunk.status == ChunkStatus.QUEUED.value)
        .values(status=ChunkStatus.CANCELLED.value, finished_at=now, lease_until=None, error="run cancelled")
    )
    dropped = updated_count(result)
    if dropped:
        session.execute(update(Run).where(Run.id == run_id).values(chunks_done=Run.chunks_done + dropped))
    return dropped
