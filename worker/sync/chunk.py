"""sync_chunk: re-sync up to 200 CRM records with the registry, exactly once per record even after a crash.

Steps: claim the chunk (compare-and-set, with a lease) → run one attempt's steps (``worker.sync.chunk_work``:
re-read, look up, apply the policies, write only changed fields) → record counts and failures and finish the chunk
in one transaction → close the run when it was the last chunk. A failure is classified once: retried, given up,
or the whole run failed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import update
from sqlalchemy.orm import Session

from config.settings import Settings, get_settings
from worker.budget import control as budget
from worker.changes import planned
from worker.crm.port import CrmClient
from worker.errors import (
    ApiBudgetReached,
    ChunkLost,
    CrmLimitExceeded,
    RegsyncError,
    StateConflict,
    fails_run,
    with_advice,
)
from worker.infra.dispatch import Dispatcher
from worker.ledger import chunks, field_changes, runs, writes
from worker.ledger.chunks import Claim, Failure
from worker.ledger.db import ride_out, session_scope
from worker.ledger.models import ChunkStatus, Run, utcnow
from worker.registry.port import RegistryProvider
from worker.sync import pump_ledger
from worker.sync.chunk_work import ChunkWork, Outcome
from worker.sync.company_cache_stores import cache_for_run
from worker.sync.failures import classify, log_if_unexpected
from worker.sync.outcomes import ChunkOutcome
from worker.sync.pump import resume_if_lost
from worker.sync.run_closed import mark_closed
from worker.sync.runtime import (
    ClientFactory,
    counting_registry_sends,
    open_clients,
    shared_stores,
)
from worker.sync.send_tally import charge_dead_attempt, forget_run, retire, tally_for

log = logging.getLogger(__name__)


def sync_chunk(
    chunk_id: int,
    *,
    settings: Settings | None = None,
    clients: ClientFactory = open_clients,
    last_attempt: bool = False,
    dispatch: Dispatcher | None = None,
) -> ChunkOutcome:
    """Run one chunk; returns what happened (worker.sync.outcomes.ChunkOutcome says what each outcome means).

    Args:
        last_attempt: no retry follows; a transient failure now fails the chunk's records instead. The chunk's
            ``chunk_max_attempts``-th claim is always the last.
        dispatch: hears of the run this chunk closes (``run_closed``: alert evaluation), once committed.

    Raises:
        RegsyncError: a transient failure; the chunk was released so that a retry can claim it.
    """
    settings = settings or get_settings()
    with session_scope() as session:
        claim = chunks.claim(session, chunk_id, settings.chunk_lease_s, utcnow())
    early = _not_started(claim, dispatch)
    if early is not None:
        return early
    assert claim is not None
    if claim.attempt > settings.chunk_max_attempts:  # taken over after its last attempt died: nothing left
        _give_up_lost(claim, settings, dispatch)
        return ChunkOutcome.GAVE_UP
    try:
        _attempt(claim, settings, clients, dispatch)
    except Exception as exc:
        error = classify(exc)
        log_if_unexpected(log, error, exc, chunk_id=chunk_id)
        last = last_attempt or claim.attempt >= settings.chunk_max_attempts
        return _after_failure(claim, error, last, dispatch)
    return ChunkOutcome.DONE


def _attempt(claim: Claim, settings: Settings, clients: ClientFactory, dispatch: Dispatcher | None) -> None:
    """Sync the chunk and record it; recording is part of the attempt (a refused commit is retried too)."""
    if claim.took_over:  # the attempt before this one died without counting its registry calls
        _charge_dead_attempt(claim, settings)
    resume_if_lost(
        claim.run_id, settings
    )  # the run's registry pump died: go on with it here (worker.sync.pump)
    tally = tally_for(settings, claim.run_tag, claim.chunk_id, claim.attempt)
    stores = shared_stores(settings)
    with (
        counting_registry_sends(tally),
        clients(claim.connection_id, settings) as (runtime, crm, registry),
        _charged_if_failed(claim, crm, registry),
    ):
        budget.require_budget(claim, runtime.spec, settings, stores.budget)
        outcome = ChunkWork(claim, runtime, crm, registry, settings, stores=stores).run()
        # The records are written: a ledger blip now must not throw the attempt away (see ride_out).
        ride_out(lambda: _finish(claim, ChunkStatus.DONE, outcome, dispatch=dispatch), within_s=_outage_s())


def _give_up_lost(claim: Claim, settings: Settings, dispatch: Dispatcher | None) -> None:
    lost, dead = ChunkLost(), claim.attempt - 1
    calls = retire(settings, claim.run_tag, claim.chunk_id, dead) if claim.took_over else 0
    message = f"{lost.message} (attempt {dead} of {settings.chunk_max_attempts})"
    give_up(claim, lost.code, message, registry_calls=calls, dispatch=dispatch)


def _charge_dead_attempt(claim: Claim, settings: Settings) -> None:
    with session_scope() as session:
        charge_dead_attempt(
            session,
            settings,
            claim.run_id,
            run_tag=claim.run_tag,
            chunk_id=claim.chunk_id,
            attempt=claim.attempt - 1,
        )


def _after_failure(
    claim: Claim, exc: RegsyncError, last_attempt: bool, dispatch: Dispatcher | None
) -> ChunkOutcome:
    """Pause, fail the run, retry or give up, by what the error is (worker.errors: transient, run-wide)."""
    if isinstance(exc, ApiBudgetReached | CrmLimitExceeded):
        budget.pause_for_budget(claim, budget.pause_reason(exc))
        return ChunkOutcome.PAUSED
    if isinstance(exc, StateConflict):  # this attempt outlived its lease and another one took the chunk over
        log.warning("chunk attempt stopped: %s", exc.message, extra={"chunk_id": claim.chunk_id})
        return ChunkOutcome.TAKEN_OVER
    if fails_run(exc):
        _abort(claim, exc, dispatch)
        return ChunkOutcome.ABORTED
    if exc.transient and not last_attempt:
        _release(claim, exc)
        raise exc
    _give_up(claim, exc, dispatch)
    return ChunkOutcome.GAVE_UP


def _finish(
    claim: Claim,
    status: ChunkStatus,
    outcome: Outcome,
    *,
    error: str | None = None,
    dispatch: Dispatcher | None = None,
) -> None:
    """Record the chunk's outcome and add it to the run, atomically, if this attempt still owns the chunk."""
    now = utcnow()
    closing = _PumpAtClose(claim.run_id, claim.run_tag)
    try:
        with session_scope() as session:
            if not chunks.finish(session, claim, status, now, counts=outcome.counts(), error=error):
                log.warning("chunk taken over by another attempt", extra={"chunk_id": claim.chunk_id})
                return
            _record(session, claim, status, outcome, now)
            closed = runs.maybe_close(session, claim.run_id, now, listener=dispatch)
            if closed is not None:
                closing.count(session)
    except BaseException:
        closing.undo()  # the close did not commit: the run's requests go on
        raise
    if closed is not None:
        log.info("run finished", extra={"run_id": claim.run_id, "status": closed.value})
        _drop_cache(claim.run_id, claim.run_tag)


def _record(session: Session, claim: Claim, status: ChunkStatus, outcome: Outcome, now: dt.datetime) -> None:
    """The chunk's failures, writes, counts and field changes, into the run (the finishing transaction)."""
    counts = outcome.counts()
    chunks.add_failures(session, claim.run_id, claim.chunk_id, outcome.ledger_rows(), claim.attempt)
    writes.confirm(session, claim.connection_id, claim.run_id, outcome.written_ok, now)
    writes.clear(session, claim.connection_id, claim.run_id, outcome.written_failed)
    runs.add_chunk_result(session, claim.run_id, counts, now, api_used=outcome.api_used)
    runs.record_api_limit(session, claim.run_id, outcome.api_used, outcome.api_limit)
    field_changes.add(session, claim.run_id, outcome.field_changes)  # after the run row lock (see add)
    if status is ChunkStatus.DONE or outcome.failures:  # else (cancelled, run failed) the next run carries
        planned.settle(session, claim.run_id, claim.record_ids, outcome.settled())  # a changes run's events


class _PumpAtClose:
    """The closing transaction's count of the run's registry pump (worker.sync.run_closed).

    :meth:`count` stops the run's registry requests, then adds what its pump sent beyond its last report: marked
    first, so that the count committed with the close is every request the registry will get. Should Redis fail,
    the pump's own next report still counts its requests. :meth:`undo` lifts the mark if the close did not commit.
    """

    def __init__(self, run_id: int, run_tag: str) -> None:
        self.run_id, self.run_tag, self.marked = run_id, run_tag, False

    def count(self, session: Session) -> None:
        try:
            mark_closed(get_settings(), self.run_tag)
            self.marked = True
            pump_ledger.charge_lost(session, self.run_id, self.run_tag)
        except RegsyncError as exc:  # a closed run must not fail over its pump's count
            log.warning(
                "registry pump's last calls not counted at close: %s",
                exc.message,
                extra={"run_id": self.run_id},
            )

    def undo(self) -> None:
        if not self.marked:
            return
        try:
            mark_closed(get_settings(), self.run_tag, closed=False)
        except RegsyncError as exc:
            log.error(
                "a run that did not close refuses registry requests: %s",
                exc.message,
                extra={"run_id": self.run_id},
            )


def _drop_cache(run_id: int, run_tag: str) -> None:
    """A closed run: drop its company cache and its send tallies."""
    try:
        cache_for_run(get_settings(), run_id).drop()
        forget_run(get_settings(), run_tag)
    except RegsyncError as exc:  # the cache expires by itself; a closed run must not fail over it
        log.warning("company cache of a closed run not dropped: %s", exc.message, extra={"run_id": run_id})


def _abort(claim: Claim, exc: RegsyncError, dispatch: Dispatcher | None) -> None:
    """A permanent error about the whole run: fail the run now (its queued chunks are cancelled) and this chunk."""
    log.error("run failed: %s", exc.message, extra={"run_id": claim.run_id, "chunk_id": claim.chunk_id})
    with session_scope() as session:
        runs.fail_run(session, claim.run_id, exc.code, with_advice(exc), utcnow(), listener=dispatch)
    _finish(claim, ChunkStatus.FAILED, Outcome(), error=exc.message, dispatch=dispatch)


def give_up(
    claim: Claim, code: str, message: str, *, registry_calls: int = 0, dispatch: Dispatcher | None = None
) -> None:
    """No attempt is left: every record of the chunk fails with the reason, and the run goes on.

    Args:
        registry_calls: calls of a dead attempt that nobody counted yet (worker.sync.send_tally).
    """
    log.error("chunk given up: %s", message, extra={"chunk_id": claim.chunk_id, "attempt": claim.attempt})
    failures = [Failure(record_id, None, code, message) for record_id in claim.record_ids]
    outcome = Outcome(failures=failures, registry_calls=registry_calls)
    _finish(claim, ChunkStatus.FAILED, outcome, error=message, dispatch=dispatch)


def _give_up(claim: Claim, exc: RegsyncError, dispatch: Dispatcher | None) -> None:
    retried = f"gave up after {claim.attempt} attempts: " if exc.transient else ""
    give_up(claim, exc.code, retried + exc.message, dispatch=dispatch)


@contextmanager
def _charged_if_failed(claim: Claim, crm: CrmClient, registry: RegistryProvider) -> Iterator[None]:
    """An attempt that fails still spent calls: add them to the run's counts (a success counts in ``_finish``)."""
    before = (registry.calls, crm.calls)
    try:
        yield
    except (
        StateConflict
    ):  # another attempt took the chunk over and counted this one's calls (worker.sync.send_tally)
        raise
    except BaseException:
        spent = (registry.calls - before[0], crm.calls - before[1])
        if any(spent):

            def charge() -> None:
                with session_scope() as session:
                    session.execute(
                        update(Run)
                        .where(Run.id == claim.run_id)
                        .values(
                            registry_calls=Run.registry_calls + spent[0], crm_calls=Run.crm_calls + spent[1]
                        )
                    )

            ride_out(charge, within_s=_outage_s())  # a ledger blip is what failed many attempts: wait for it
        raise


def _not_started(claim: Claim | None, dispatch: Dispatcher | None) -> ChunkOutcome | None:
    """What happens to a chunk that must not start: not claimed, dropped (run stopping), or handed back (paused)."""
    if claim is None:
        return ChunkOutcome.NOT_CLAIMED
    if claim.run_stopping:
        _finish(
            claim,
            ChunkStatus.CANCELLED,
            Outcome(),
            error="run stopped before this chunk started",
            dispatch=dispatch,
        )
        return ChunkOutcome.DROPPED
    if claim.run_paused:
        with session_scope() as session:
            if budget.hand_back_if_paused(session, claim):
                return ChunkOutcome.PAUSED
    return None  # (a run resumed since the claim read it goes on like any running run)


def _release(claim: Claim, exc: RegsyncError) -> None:
    message = exc.message
    log.warning("chunk released for retry: %s", message, extra={"chunk_id": claim.chunk_id})

    def hand_back() -> None:
        with session_scope() as session:
            chunks.release(session, claim, message)

    # Handed back even through a ledger outage, so that the retry finds the chunk queued, not leased.
    ride_out(hand_back, within_s=_outage_s())


def _outage_s() -> float:
    """How long a worker waits for a ledger that does not answer: half a lease, so its lease still holds."""
    return get_settings().chunk_lease_s / 2
