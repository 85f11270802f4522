"""plan_run: stream a connection's CRM records, validate org numbers, and cut the valid ones into chunks.

Planning streams (constant memory at any size) ordered by Id and commits every few chunks together with a
cursor (the last Id whose fate is stored), so a planner that dies resumes from the cursor without planning a
record twice. Invalid org numbers are recorded as failures here and never reach the registry.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import update
from sqlalchemy.orm import Session

from config.settings import Settings, get_settings
from worker.backfill.options import Selection, selection_for
from worker.changes import keyindex
from worker.connections.preflight import check_run_start
from worker.crm.port import CrmClient, CrmRecord
from worker.errors import (
    ApiBudgetReached,
    CrmLimitExceeded,
    FeedGap,
    InvalidOrgNumber,
    LedgerError,
    RegsyncError,
    StateConflict,
    with_advice,
)
from worker.infra.dispatch import Dispatcher
from worker.ledger import chunks, runs
from worker.ledger.chunks import Failure
from worker.ledger.db import session_scope
from worker.ledger.models import Run, RunMode, RunStatus, utcnow
from worker.matching.matcher import NameMatcher, matcher_for
from worker.orgnr import normalise
from worker.sync.failures import classify, log_if_unexpected
from worker.sync.outcomes import PlanOutcome
from worker.sync.pump_start import PumpStarter, pump_wanted
from worker.sync.runtime import ClientFactory, Runtime, open_clients

log = logging.getLogger(__name__)

#: Chunks stored per ledger transaction.
CHUNKS_PER_COMMIT = 10
#: The planner extends its lease this many times per lease while records stream in.
HEARTBEATS_PER_LEASE = 3
_SALESFORCE_ID = re.compile(r"^[A-Za-z0-9]{15,18}$")


@dataclass(slots=True)
class Page:
    """Records planned since the last commit; every one of them is stored by the next commit."""

    valid: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # per valid record, its ``CC:orgnr`` (the registry pump's)
    failures: list[Failure] = field(default_factory=list)
    planned: int = 0
    opted_out: int = 0
    cursor: str | None = None
    indexed: list[keyindex.PlannedKey] = field(default_factory=list)  # every record read: for the key index
    unkeyed: list[CrmRecord] = field(default_factory=list)  # no valid org number: for name matching
    name_searches: int = 0


def plan_run(
    run_id: int,
    dispatch: Dispatcher,
    *,
    settings: Settings | None = None,
    clients: ClientFactory = open_clients,
    last_attempt: bool = False,
) -> PlanOutcome:
    """Plan (or resume planning) one run; returns what happened (worker.sync.outcomes.PlanOutcome says what each
    outcome means).

    Args:
        last_attempt: no retry follows; a transient failure now fails the run. The run's
            ``plan_max_attempts``-th planning claim is always the last.

    Raises:
        RegsyncError: a transient failure; planning was released so that a retry can resume it.
    """
    settings = settings or get_settings()
    with session_scope() as session:
        run = runs.claim_planning(session, run_id, settings.chunk_lease_s, utcnow())
    if run is None:
        return PlanOutcome.NOT_CLAIMED
    try:
        with clients(run.connection_id, settings) as (runtime, crm, _registry):
            # A mapping that no longer fits (or a refused user) fails the run here, before any record is read.
            check_run_start(runtime.spec, crm)
            planner = _planner_for(run)(run, runtime, crm, dispatch, settings)
            planner.matcher = matcher_for(run, runtime.spec, crm, _registry)
            planner.run()
    except Exception as exc:
        error = classify(exc)
        log_if_unexpected(log, error, exc, run_id=run_id)
        last = last_attempt or run.plan_attempts >= settings.plan_max_attempts
        return _planning_failed(run, error, last, dispatch)
    return PlanOutcome.PLANNED


def _planner_for(run: Run) -> type[Planner]:
    """A ``changes`` run reads the CRM delta and the change feed (worker.changes.plan); any other run every record."""
    if run.mode == RunMode.CHANGES.value:
        from worker.changes.plan import ChangesPlanner

        return ChangesPlanner
    return Planner


def _planning_failed(run: Run, exc: RegsyncError, last_attempt: bool, dispatch: Dispatcher) -> PlanOutcome:
    """Pause, retry or fail the run, by what the error is (worker.errors: transient or permanent)."""
    extra = {"run_id": run.id, "attempt": run.plan_attempts}
    if isinstance(exc, ApiBudgetReached | CrmLimitExceeded):
        pause_planning(run, exc.message)
        return PlanOutcome.PAUSED
    if isinstance(exc, StateConflict):
        log.warning("planner stopped: %s", exc.message, extra=extra)
        return PlanOutcome.TAKEN_OVER
    if exc.transient and not last_attempt:
        log.warning("planning released for retry: %s", exc.message, extra=extra)
        with session_scope() as session:
            runs.release_planning(session, run.id, run.plan_attempts)
        raise exc
    message = (
        f"gave up planning after {run.plan_attempts} attempts: {exc.message}"
        if exc.transient
        else with_advice(exc)
    )
    log.error("run failed while planning: %s", message, extra=extra)
    if isinstance(exc, FeedGap):
        from worker.changes.gap import open_feed_gap

        open_feed_gap(run, message)
    with session_scope() as session:
        runs.fail_run(session, run.id, exc.code, message, utcnow(), listener=dispatch)
    return PlanOutcome.FAILED


def pause_planning(run: Run, reason: str) -> None:
    """The org's API limit refused the planner: pause the run; the sweeper resumes it and sends the plan again."""
    with session_scope() as session:
        paused = runs.transition(
            session, run.id, RunStatus.RUNNING, RunStatus.PAUSED_BUDGET, error=reason, plan_lease_until=None
        )
    if paused:
        log.warning("run paused while planning: %s", reason, extra={"run_id": run.id})


class Planner:
    def __init__(
        self, run: Run, runtime: Runtime, crm: CrmClient, dispatch: Dispatcher, settings: Settings
    ) -> None:
        self.run_id = run.id
        self.attempt = run.plan_attempts  # this planner's claim token
        self.cursor = run.plan_cursor
        self.spec = runtime.spec
        self.crm = crm
        self.dispatch = dispatch
        self.settings = settings
        self.chunk_size = runtime.spec.sync.chunk_size
        self.calls_reported = 0
        self.selection = selection_for(run, runtime.spec)  # every record, or what a backfill selects
        self.stopping = bool(run.cancel_requested or run.error_code)
        self.pump_sent = False
        self.beat_at = time.monotonic() + self.settings.chunk_lease_s / HEARTBEATS_PER_LEASE
        self.matcher: NameMatcher | None = None  # set by plan_run when [matching] is enabled

    def run(self) -> None:
        page = Page()
        records: Iterator[CrmRecord] = iter([]) if self.stopping else self._records()
        for record in records:
            self._heartbeat_if_due()
            self._take(page, record)
            if len(page.valid) >= CHUNKS_PER_COMMIT * self.chunk_size:
                self._commit(page, final=False)
                page = Page()
                if self.stopping:  # cancelled or aborted meanwhile: stop, close with what is planned
                    break
        self._commit(page, final=True)

    def _heartbeat_if_due(self) -> None:
        """Extend the plan lease a few times per lease while records stream in (commits extend it too)."""
        if time.monotonic() < self.beat_at:
            return
        with session_scope() as session:
            self._still_mine(session)
        self.beat_at = time.monotonic() + self.settings.chunk_lease_s / HEARTBEATS_PER_LEASE

    def _still_mine(self, session: Session) -> None:
        """Extend the plan lease (locking the run row until commit).

        Raises:
            StateConflict: another planner took the run over (this one outlived its lease), or the run ended;
                committing now could plan records a second time.
        """
        if not runs.extend_planning(
            session, self.run_id, self.attempt, self.settings.chunk_lease_s, utcnow()
        ):
            raise StateConflict(
                f"the planner of run {self.run_id} (attempt {self.attempt}) lost its lease or the run ended; "
                "it stopped without committing"
            )

    def _records(self) -> Iterator[CrmRecord]:
        sf = self.spec.salesforce
        fields = ["Id", sf.org_number_field] + ([sf.country_field] if sf.country_field else [])
        fields += [sf.opt_out_field] if sf.opt_out_field else []
        fields += self.matcher.fields() if self.matcher else []
        if self.cursor and not _SALESFORCE_ID.match(self.cursor):
            raise LedgerError(f"run {self.run_id} has a corrupt plan cursor; cancel it and start a new run")
        for where in self.selection.queries(self.cursor):
            yield from self.crm.stream_records(fields, where=where, order_by="Id")

    def _take(self, page: Page, record: CrmRecord) -> None:
        sf = self.spec.salesforce
        record_id = str(record["Id"])
        page.planned += 1
        page.cursor = record_id
        page.indexed.append((record_id, *keyindex.raw_key(record, sf)))
        if sf.opt_out_field and record.get(sf.opt_out_field) is True:
            page.opted_out += 1  # the record's owner opted out of registry sync: never planned
            return
        country = sf.country or record.get(sf.country_field or "")
        raw = record.get(sf.org_number_field)
        try:
            number = normalise(None if country is None else str(country), None if raw is None else str(raw))
        except InvalidOrgNumber as exc:
            org = None if raw is None else str(raw)[:32]
            page.failures.append(Failure(record_id, org, exc.code, exc.message))
            if self.matcher is not None:
                page.unkeyed.append(record)
            return
        page.valid.append(record_id)
        page.keys.append(f"{str(country).upper()}:{number}")

    def _commit(self, page: Page, *, final: bool) -> None:
        """Store this page's chunks, failures, counts and cursor in one transaction, then enqueue the chunks."""
        self._match_names(page)
        size = self.chunk_size
        batches = [page.valid[i : i + size] for i in range(0, len(page.valid), size)]
        keys = [list(dict.fromkeys(page.keys[i : i + size])) for i in range(0, len(page.keys), size)]
        now = utcnow()
        with session_scope() as session:
            self._still_mine(session)
            run = runs.get_run(session, self.run_id)
            self.stopping = bool(run.cancel_requested or run.error_code)
            chunk_ids = chunks.add_chunks(session, run, batches, now, keys)
            chunks.add_failures(session, self.run_id, None, page.failures)
            whole = final and not self.stopping and self.selection == Selection()  # every record was read
            since = run.started_at if whole else None
            keyindex.refresh_from_plan(
                session, run.connection_id, self.spec.salesforce.object, page.indexed, complete_since=since
            )
            self._count(session, page, final, now)
            closed = runs.maybe_close(session, self.run_id, now, listener=self.dispatch) if final else None
        if chunk_ids:
            self._start_pump()  # first: its message must not queue behind the chunks it should run ahead of
            self.dispatch.sync(chunk_ids)
        if closed is not None:
            log.info("run finished", extra={"run_id": self.run_id, "status": closed.value})

    def _match_names(self, page: Page) -> None:
        """Name-match the page's records without a valid org number; those matched join its chunks."""
        if self.matcher is None or not page.unkeyed or self.stopping:
            return
        result = self.matcher.match(page.unkeyed, beat=self._heartbeat_if_due)
        page.name_searches = result.searched
        page.failures = [f for f in page.failures if f.record_id not in result.keys]
        for record_id, key in result.keys.items():
            page.valid.append(record_id)
            page.keys.append(key)

    def _start_pump(self) -> None:
        """Once per planner, with its first chunks: send the run's registry pump (a duplicate finds it claimed)."""
        if self.pump_sent:
            return
        self.pump_sent = True
        if pump_wanted(self.settings) and isinstance(self.dispatch, PumpStarter):
            self.dispatch.pump(self.run_id)

    def _count(self, session: Session, page: Page, final: bool, now: dt.datetime) -> None:
        calls, self.calls_reported = self.crm.calls - self.calls_reported, self.crm.calls
        values: dict[str, object] = {
            "planned": Run.planned + page.planned,
            "invalid": Run.invalid + len(page.failures),
            "opted_out": Run.opted_out + page.opted_out,
            "crm_calls": Run.crm_calls + calls,
            "name_searches": Run.name_searches + page.name_searches,
            "registry_calls": Run.registry_calls + (0 if self._dry_run() else page.name_searches),
            "heartbeat_at": now,
            "plan_lease_until": now + dt.timedelta(seconds=self.settings.chunk_lease_s),
        }
        if page.cursor:
            values["plan_cursor"] = page.cursor
        if final:
            values["planned_complete"] = True
        self._record_usage(session, values)
        session.execute(update(Run).where(Run.id == self.run_id).values(**values))

    def _dry_run(self) -> bool:
        return bool(self.matcher and self.matcher.dry_run)

    def _record_usage(self, session: Session, values: dict[str, object]) -> None:
        """The org's API usage as Salesforce last reported it: the run's first reading, and its limit."""
        usage = self.crm.usage
        if usage.used is not None:
            values["api_limit"] = usage.limit
            session.execute(
                update(Run)
                .where(Run.id == self.run_id, Run.api_used_before.is_(None))
                .values(api_used_before=usage.used)
            )
