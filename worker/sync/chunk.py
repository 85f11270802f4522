"""sync_chunk: re-sync up to 200 CRM records with the registry, exactly once per record even after a crash.

Steps: claim the chunk (compare-and-set, with a lease) → re-read the records by Id → validate org numbers →
look up each unique org number once → apply the field policies → remember pending write hashes → PATCH only
changed fields → record counts and failures and finish the chunk in one transaction → close the run when it was
the last chunk.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import update
from sqlalchemy.orm import Session

from config.settings import Settings, get_settings
from worker.backfill.options import BackfillOptions
from worker.budget import control as budget
from worker.company import Company, CompanyKey, LookupResult
from worker.crm.port import CrmClient, CrmRecord, WriteResult
from worker.crm.values import value_hash
from worker.errors import (
    ApiBudgetReached,
    ChunkLost,
    CrmLimitExceeded,
    InvalidOrgNumber,
    RegsyncError,
    StateConflict,
    fails_run,
    with_advice,
)
from worker.infra.dispatch import Dispatcher
from worker.ledger import chunks, field_changes, runs, writes
from worker.ledger.chunks import Claim, Failure
from worker.ledger.counters import Counts
from worker.ledger.db import ride_out, session_scope
from worker.ledger.field_changes import FieldTally
from worker.ledger.models import ChunkStatus, Run, utcnow
from worker.ledger.writes import FieldState
from worker.orgnr import normalise
from worker.registry.outcomes import OUT_OF_SCOPE_CODES, RegistryNotice, notice_for
from worker.registry.port import RegistryProvider
from worker.sync import preview
from worker.sync.company_cache import lookup_once
from worker.sync.company_cache_stores import cache_for_run
from worker.sync.failures import classify, log_if_unexpected
from worker.sync.outcomes import ChunkOutcome
from worker.sync.policies import RecordPlan, plan_record
from worker.sync.runtime import (
    ClientFactory,
    Runtime,
    SharedStores,
    counting_registry_sends,
    open_clients,
    shared_stores,
)
from worker.sync.send_tally import charge_dead_attempt, forget_run, sent_by, tally_for

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Outcome:
    """What one attempt at a chunk found and did."""

    unchanged: int = 0
    updated: int = 0
    fetched: int = 0
    failures: list[Failure] = field(default_factory=list)
    written_ok: list[str] = field(default_factory=list)
    written_failed: list[str] = field(default_factory=list)
    registry_calls: int = 0
    crm_calls: int = 0
    api_used: int | None = None
    #: The org's daily limit as Sforce-Limit-Info said last (an admin may have raised it since planning).
    api_limit: int | None = None
    protected: int = 0  # fields left alone because someone edited them by hand (protect_manual)
    opted_out: int = 0  # records skipped because their opt-out checkbox is now ticked
    out_of_scope: int = 0  # records skipped because the registry does not cover their country
    notices: list[Failure] = field(default_factory=list)  # registry outcomes that are not failures
    field_changes: dict[str, FieldTally] = field(default_factory=dict)  # dry run: what would change

    def counts(self) -> Counts:
        """What this attempt adds to its run; a notice counts in its own counter, never in ``failed``."""
        noticed = Counter(notice.error_code for notice in self.notices)
        return Counts(
            fetched=self.fetched,
            unchanged=self.unchanged,
            updated=self.updated,
            failed=len(self.failures),
            registry_calls=self.registry_calls,
            crm_calls=self.crm_calls,
            protected=self.protected,
            opted_out=self.opted_out,
            out_of_scope=self.out_of_scope,
            **{notice.counter: noticed[notice.value] for notice in RegistryNotice},
        )

    def ledger_rows(self) -> list[Failure]:
        """The failures, and the notices of records that did not fail (one row per record: a failure wins)."""
        failed = {failure.record_id for failure in self.failures}
        return self.failures + [notice for notice in self.notices if notice.record_id not in failed]


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
    calls = sent_by(settings, claim.run_tag, claim.chunk_id, dead) if claim.took_over else 0
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


class ChunkWork:
    """One attempt at one chunk, step by step."""

    def __init__(
        self,
        claim: Claim,
        runtime: Runtime,
        crm: CrmClient,
        registry: RegistryProvider,
        settings: Settings,
        *,
        stores: SharedStores | None = None,
    ) -> None:
        self.claim = claim
        self.runtime = runtime
        self.options = BackfillOptions.from_run(claim.options)
        self.spec = self.options.effective_spec(runtime.spec)  # a backfill's --fields limit the mapping
        self.crm = crm
        self.registry = registry
        self.settings = settings
        self.stores = stores or shared_stores(settings)
        self.outcome = Outcome()
        self._calls_before = (registry.calls, crm.calls)

    def run(self) -> Outcome:
        records = self._without_opted_out(self._read_records())
        keys = self._keys(records)
        results = self._lookup(sorted(set(keys.values()), key=lambda k: (k.country, k.org_number)))
        self._heartbeat()
        plans = self._plans(records, keys, results)
        if self.options.dry_run:
            self._preview(records, plans)
        else:
            self._write(plans)
        # Differences, not totals: the clients may have served earlier work (a shared provider, a test fake).
        self.outcome.registry_calls = self.registry.calls - self._calls_before[0]
        self.outcome.crm_calls = self.crm.calls - self._calls_before[1]
        self.outcome.api_used = self.crm.usage.used
        self.outcome.api_limit = self.crm.usage.limit
        return self.outcome

    def _read_records(self) -> dict[str, CrmRecord]:
        fresh = self.crm.read_by_ids(self.claim.record_ids, self.spec.crm_fields())
        found = {record["Id"]: record for record in fresh}
        for record_id in self.claim.record_ids:
            if record_id not in found:
                self._fail(record_id, None, "RECORD_DELETED", "the record no longer exists in Salesforce")
        self._heartbeat()
        return found

    def _without_opted_out(self, records: dict[str, CrmRecord]) -> dict[str, CrmRecord]:
        """Re-check the opt-out with the fresh values: a record opted out since planning is left alone."""
        name = self.spec.salesforce.opt_out_field
        if not name:
            return records
        kept = {record_id: record for record_id, record in records.items() if record.get(name) is not True}
        self.outcome.opted_out += len(records) - len(kept)
        return kept

    def _lookup(self, keys: list[CompanyKey]) -> dict[CompanyKey, LookupResult]:
        """Registry answers, each key fetched once per run whichever chunk needs it (worker.sync.company_cache)."""
        cache = self.stores.company_cache(self.claim.run_id)
        owner = f"{self.claim.chunk_id}:{self.claim.attempt}"
        return lookup_once(
            cache,
            self.registry,
            keys,
            owner,
            claim_ttl_s=self.settings.chunk_lease_s,
            while_waiting=self._heartbeat,
        )

    def _keys(self, records: dict[str, CrmRecord]) -> dict[str, CompanyKey]:
        sf = self.spec.salesforce
        keys: dict[str, CompanyKey] = {}
        for record_id, record in records.items():
            country = sf.country or record.get(sf.country_field or "") or ""
            raw = record.get(sf.org_number_field)
            try:
                keys[record_id] = CompanyKey(str(country).upper(), normalise(str(country), raw))
            except InvalidOrgNumber as exc:
                self._fail(record_id, None if raw is None else str(raw)[:32], exc.code, exc.message)
        return keys

    def _plans(
        self,
        records: dict[str, CrmRecord],
        keys: dict[str, CompanyKey],
        results: dict[CompanyKey, LookupResult],
    ) -> dict[str, RecordPlan]:
        with session_scope() as session:
            state = writes.load(session, self.runtime.connection_id, list(keys))
        plans: dict[str, RecordPlan] = {}
        for record_id, key in keys.items():
            company = self._company(record_id, key, results.get(key))
            if company is None:
                continue
            plan = self._plan(record_id, records[record_id], company, state.get(record_id, {}))
            if plan is not None:
                plans[record_id] = plan
        return plans

    def _company(self, record_id: str, key: CompanyKey, result: LookupResult | None) -> Company | None:
        """The registry's company for this record, with its notice if any; None when out of scope or failed."""
        if result is not None and result.company is not None:
            self.outcome.fetched += 1
            notice = notice_for(result.company.status)
            if notice is not None:
                message = notice.message(result.company.status)
                self.outcome.notices.append(Failure(record_id, key.org_number, notice.value, message))
            return result.company
        if result is not None and result.error_code in OUT_OF_SCOPE_CODES:
            self.outcome.out_of_scope += 1  # skipped: neither failed nor listed
            return None
        code = result.error_code if result and result.error_code else "REGISTRY_NO_ANSWER"
        message = result.error_message if result and result.error_message else "no registry answer"
        self._fail(record_id, key.org_number, code, message)
        return None

    def _plan(
        self, record_id: str, record: CrmRecord, company: Company, fields: dict[str, FieldState]
    ) -> RecordPlan | None:
        """The record's changes, or None after counting it unchanged (or updated by an earlier attempt)."""
        confirmed = {name: s.confirmed_hash for name, s in fields.items() if s.confirmed_hash}
        plan = plan_record(record, company, self.spec.mapping, confirmed)
        self.outcome.protected += len(plan.protected)
        if plan.changes:
            return plan
        if self._written_by_this_run(record, fields):
            self.outcome.updated += 1
            self.outcome.written_ok.append(record_id)
        else:
            self.outcome.unchanged += 1
        return None

    def _written_by_this_run(self, record: CrmRecord, fields: dict[str, FieldState]) -> bool:
        """An earlier attempt of this run wrote this record and then died before recording it."""
        pending = {name: s for name, s in fields.items() if s.pending_run_id == self.claim.run_id}
        return bool(pending) and all(
            value_hash(record.get(name)) == s.pending_hash for name, s in pending.items()
        )

    def _preview(self, records: dict[str, CrmRecord], plans: dict[str, RecordPlan]) -> None:
        """Dry run: tally what would change; no write, no pending hash. ``updated`` counts would-be updates."""
        self.outcome.field_changes = preview.tally(records, plans)
        self.outcome.updated += len(plans)

    def _write(self, plans: dict[str, RecordPlan]) -> None:
        if not plans:
            return
        with session_scope() as session:
            # One transaction with the pending hashes: the PATCH leaves with a fresh lease, or not at all.
            self._still_mine(session)
            writes.mark_pending(
                session,
                self.runtime.connection_id,
                self.claim.run_id,
                {rid: p.changes for rid, p in plans.items()},
            )
        payload = [{"Id": record_id, **plan.changes} for record_id, plan in plans.items()]
        self._apply_results(self.crm.update(payload), plans)

    def _apply_results(self, results: Iterable[WriteResult], plans: dict[str, RecordPlan]) -> None:
        for result in results:
            if result.success:
                self.outcome.updated += 1
                self.outcome.written_ok.append(result.record_id)
            else:
                self.outcome.written_failed.append(result.record_id)
                self._fail(
                    result.record_id, None, result.error_code or "CRM_WRITE_FAILED", result.message or ""
                )

    def _fail(self, record_id: str, org_number: str | None, code: str, message: str) -> None:
        self.outcome.failures.append(Failure(record_id, org_number, code, message))

    def _heartbeat(self) -> None:
        with session_scope() as session:
            self._still_mine(session)

    def _still_mine(self, session: Session) -> None:
        """Extend this attempt's lease.

        Raises:
            StateConflict: another attempt took the chunk over (this one was paused past its lease, e.g. a frozen
                VM); writing now would write its records a second time.
        """
        if not chunks.heartbeat(session, self.claim, self.settings.chunk_lease_s, utcnow()):
            raise StateConflict(
                f"chunk {self.claim.chunk_id} attempt {self.claim.attempt} lost its lease to another attempt; "
                "it stopped without writing"
            )


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
    counts = outcome.counts()
    with session_scope() as session:
        if not chunks.finish(session, claim, status, now, counts=counts, error=error):
            log.warning("chunk taken over by another attempt", extra={"chunk_id": claim.chunk_id})
            return
        chunks.add_failures(session, claim.run_id, claim.chunk_id, outcome.ledger_rows(), claim.attempt)
        writes.confirm(session, claim.connection_id, claim.run_id, outcome.written_ok, now)
        writes.clear(session, claim.connection_id, claim.run_id, outcome.written_failed)
        runs.add_chunk_result(session, claim.run_id, counts, now, api_used=outcome.api_used)
        runs.record_api_limit(session, claim.run_id, outcome.api_used, outcome.api_limit)
        field_changes.add(session, claim.run_id, outcome.field_changes)  # after the run row lock (see add)
        closed = runs.maybe_close(session, claim.run_id, now, listener=dispatch)
    if closed is not None:
        log.info("run finished", extra={"run_id": claim.run_id, "status": closed.value})
        _drop_cache(claim.run_id, claim.run_tag)


def _drop_cache(run_id: int, run_tag: str) -> None:
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
