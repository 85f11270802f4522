"""Applying the budget: count regsync's calls, pause a run before a chunk would overspend, resume it later.

A pause is a compare-and-set ``running → paused_budget`` with the reason in the run's ``error`` column (its
``error_code`` stays empty: nothing failed). The chunk that found the budget spent goes back to the queue as if
it had never been claimed; chunks already running finish normally, and any chunk delivered while the run is
paused is handed back the same way. Resuming (an admin, or the sweeper once the budget allows) flips the run
back and re-sends its queued chunks: no record is lost, and none is written twice, because every chunk is
still claimed by compare-and-set and written under the pending-hash protocol.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from config.settings import Settings
from worker.budget.guard import ApiReading, budget_verdict, share_cap, utc_day
from worker.budget.org import first_on_same_org
from worker.budget.store import BudgetStore, store_for
from worker.connections.spec import ConnectionSpec, parse_spec
from worker.crm.port import CrmClient
from worker.errors import ApiBudgetReached, RegsyncError, StateConflict
from worker.infra.shared_state import row_tag, shared_redis
from worker.ledger import runs
from worker.ledger.audit import append_event
from worker.ledger.chunks import Claim
from worker.ledger.db import ride_out, session_scope, updated_one
from worker.ledger.models import Chunk, ChunkStatus, Connection, Run, RunStatus

log = logging.getLogger(__name__)


def budget_store(settings: Settings) -> BudgetStore:
    """Redis in a cluster, this process's store in the embedded demo (a task has it in its SharedStores)."""
    return store_for(shared_redis(settings))


def spec_of(session: Session, connection_id: int) -> ConnectionSpec:
    return parse_spec(
        session.execute(select(Connection.spec).where(Connection.id == connection_id)).scalar_one()
    )


def connection_tag(session: Session, connection_id: int) -> str:
    """The budget's tag for a connection: that of the first connection on the same org (worker.budget.org), so
    that every connection on one org counts against one daily allowance."""
    rows = session.execute(select(Connection.id, Connection.spec)).all()
    owner = first_on_same_org(connection_id, ((row.id, row.spec) for row in rows))
    created = session.execute(select(Connection.created_at).where(Connection.id == owner)).scalar_one()
    return row_tag(owner, created)


def record_usage(
    connection_id: int,
    crm: CrmClient,
    settings: Settings,
    now: float | None = None,
    store: BudgetStore | None = None,
) -> None:
    """Add a task's Salesforce calls to today's count and keep the org's latest usage reading, in ``store``
    (the task's SharedStores.budget; by default the one ``settings`` select).

    Never raises: the task's work is already recorded; a lost count is logged instead. A ledger that does not
    answer is waited for (half a chunk lease at most), so the calls of a ledger outage are still counted.
    """
    now = time.time() if now is None else now

    def tag_of_connection() -> str:
        with session_scope() as session:
            return connection_tag(session, connection_id)

    try:
        tag = ride_out(tag_of_connection, within_s=settings.chunk_lease_s / 2)
        store = store or budget_store(settings)
        if crm.calls:
            store.add_calls(tag, utc_day(now), crm.calls)
        if crm.usage.used is not None and crm.usage.limit is not None:
            store.save_reading(tag, ApiReading(crm.usage.used, crm.usage.limit, now))
    except (RegsyncError, SQLAlchemyError) as exc:
        log.error("Salesforce API usage not recorded: %s", exc, extra={"connection_id": connection_id})


def verdict_for(spec: ConnectionSpec, tag: str, store: BudgetStore, now: float) -> str | None:
    """Why a chunk of this connection may not start now, or None."""
    return budget_verdict(spec.budget, store.own_used(tag, utc_day(now)), store.reading(tag), now)


def check_before_chunk(
    claim: Claim, spec: ConnectionSpec, settings: Settings, store: BudgetStore | None = None
) -> str | None:
    """Why the claimed chunk must not start (the budget is spent), or None to go ahead."""
    with session_scope() as session:
        tag = connection_tag(session, claim.connection_id)
    return verdict_for(spec, tag, store or budget_store(settings), time.time())


def require_budget(
    claim: Claim, spec: ConnectionSpec, settings: Settings, store: BudgetStore | None = None
) -> None:
    """Return if the claimed chunk may start.

    Raises:
        ApiBudgetReached: the budget is spent; the message says why (for the paused run).
    """
    reason = check_before_chunk(claim, spec, settings, store)
    if reason is not None:
        raise ApiBudgetReached(reason)


def pause_reason(exc: RegsyncError) -> str:
    """The paused run's reason: our own guard's words, or what Salesforce refused (REQUEST_LIMIT_EXCEEDED)."""
    return exc.message if isinstance(exc, ApiBudgetReached) else f"Salesforce refused a call: {exc.message}"


def pause_for_budget(claim: Claim, reason: str) -> None:
    """Pause the chunk's run with ``reason`` (unless another chunk did already) and hand the chunk back.

    Raises:
        StateConflict: the run was resumed three times while we tried; the chunk's lease will bring it back.
    """
    for _ in range(3):
        with session_scope() as session:
            paused = runs.transition(
                session, claim.run_id, RunStatus.RUNNING, RunStatus.PAUSED_BUDGET, error=reason
            )
            if hand_back_if_paused(session, claim):
                if paused:
                    log.warning(
                        "run paused: %s", reason, extra={"run_id": claim.run_id, "chunk_id": claim.chunk_id}
                    )
                return
    raise StateConflict(f"run {claim.run_id} kept being resumed while chunk {claim.chunk_id} paused it")


def hand_back_if_paused(session: Session, claim: Claim) -> bool:
    """Hand the chunk back if its run is paused; False if the run is not (it was resumed: go on with the chunk).

    The run row is locked first (a no-op UPDATE, which SQLite turns into its write lock), so this and a resume
    happen one after the other: either the resume finds the chunk queued and sends it again, or we see the run
    running. Without it a resume could list the queued chunks just before this chunk is handed back, and the
    chunk would wait in the queue with no message.
    """
    locked = session.execute(
        update(Run)
        .where(Run.id == claim.run_id, Run.status == RunStatus.PAUSED_BUDGET.value)
        .values(status=Run.status)
    )
    if not updated_one(locked):
        return False
    hand_back(session, claim)
    return True


def hand_back(session: Session, claim: Claim) -> bool:
    """running → queued, undoing the claim's attempt count: the chunk made no call and wrote nothing."""
    result = session.execute(
        update(Chunk)
        .where(
            Chunk.id == claim.chunk_id,
            Chunk.attempt == claim.attempt,
            Chunk.status == ChunkStatus.RUNNING.value,
        )
        .values(status=ChunkStatus.QUEUED.value, attempt=Chunk.attempt - 1, lease_until=None)
    )
    return updated_one(result)


def resume(session: Session, run_id: int, now: dt.datetime) -> list[int] | None:
    """paused_budget → running; the run's queued chunk ids to send again, or None if it was not paused."""
    if not runs.transition(
        session, run_id, RunStatus.PAUSED_BUDGET, RunStatus.RUNNING, error=None, heartbeat_at=now
    ):
        return None
    queued = (Chunk.run_id == run_id) & (Chunk.status == ChunkStatus.QUEUED.value)
    ids = list(session.execute(select(Chunk.id).where(queued).order_by(Chunk.seq)).scalars())
    session.execute(update(Chunk).where(queued).values(enqueued_at=now))
    return ids


def resume_by_admin(
    session: Session, run_id: int, actor: str, settings: Settings, now: dt.datetime
) -> dict[str, Any]:
    """An admin resumes a paused run (audited). The usage reading is dropped so the next chunk measures afresh.

    Returns:
        ``chunk_ids`` to send again, and ``warning`` (or None) when regsync's own share looks spent already.

    Raises:
        RunNotFound: no such run.
        StateConflict: the run is not paused.
    """
    run = runs.get_run(session, run_id)
    if run.status != RunStatus.PAUSED_BUDGET.value:
        raise StateConflict(
            f"run {run_id} is {run.status}, not paused_budget; only a paused run can be resumed"
        )
    reason = run.error
    tag = connection_tag(session, run.connection_id)
    store = budget_store(settings)
    warning = _share_warning(session, run, tag, store)
    store.forget_reading(tag)
    chunk_ids = resume(session, run_id, now)
    if chunk_ids is None:
        raise StateConflict(f"run {run_id} changed while resuming it; look at `regsync runs show {run_id}`")
    append_event(
        session, actor=actor, action="run.resume", target=f"run:{run_id}",
        before={"status": RunStatus.PAUSED_BUDGET.value, "reason": reason},
        after={"status": RunStatus.RUNNING.value, "chunks_requeued": len(chunk_ids)},
    )  # fmt: skip
    return {"chunk_ids": chunk_ids, "warning": warning}


def _share_warning(session: Session, run: Run, tag: str, store: BudgetStore) -> str | None:
    reading = store.reading(tag)
    if reading is None:
        return None
    spec = spec_of(session, run.connection_id)
    used, cap = store.own_used(tag, utc_day(time.time())), share_cap(spec.budget, reading.limit)
    if used < cap:
        return None
    return (
        f"regsync already used {used} of its {cap} calls for today by the last known limit; "
        "unless the org's limit was raised, the run pauses again at its next chunk"
    )


def resume_when_allowed(session: Session, settings: Settings, now: dt.datetime) -> dict[int, list[int]]:
    """The sweeper's part: resume every paused run whose budget allows a chunk again.

    A paused run that is being cancelled or aborted is resumed too, so that its chunks are dropped and it closes.
    Every budget is read before any run changes, so a Redis failure changes nothing.

    Returns:
        The resumed runs' queued chunk ids to send again, by run id.
    """
    rows = session.execute(
        select(Run.id, Run.connection_id, Run.cancel_requested, Run.error_code).where(
            Run.status == RunStatus.PAUSED_BUDGET.value
        )
    ).all()
    if not rows:
        return {}
    store, checked = budget_store(settings), {}
    due: list[int] = []
    for run_id, connection_id, cancelling, error_code in rows:
        if connection_id not in checked:
            tag = connection_tag(session, connection_id)
            verdict = verdict_for(spec_of(session, connection_id), tag, store, now.timestamp())
            checked[connection_id] = verdict is None
        if cancelling or error_code or checked[connection_id]:
            due.append(run_id)
    resumed = {run_id: ids for run_id in due if (ids := resume(session, run_id, now)) is not None}
    for run_id in resumed:
        log.info("paused run resumed: the API budget allows it again", extra={"run_id": run_id})
    return resumed
