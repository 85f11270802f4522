"""One attempt's steps at one chunk, and what it found: re-read the records → drop opted-out ones → validate
org numbers → look each unique org number up once (per run) → apply the field policies → queue ``review``
changes and remember pending write hashes (one transaction) → PATCH only changed fields. ``worker.sync.chunk``
claims, runs and records it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from config.settings import Settings
from worker.backfill.options import BackfillOptions
from worker.changes import events, planned
from worker.changes.events import Origin, ReviewItem
from worker.changes.planned import Origins, Settled
from worker.company import Company, CompanyKey, LookupResult
from worker.crm.port import CrmClient, CrmRecord, WriteResult
from worker.crm.value_fit import VALUE_DOES_NOT_FIT
from worker.crm.values import value_hash
from worker.errors import (
    InvalidOrgNumber,
    StateConflict,
)
from worker.ledger import chunks, writes
from worker.ledger.chunks import Claim, Failure
from worker.ledger.counters import Counts
from worker.ledger.db import session_scope
from worker.ledger.field_changes import FieldTally
from worker.ledger.models import utcnow
from worker.ledger.writes import FieldState
from worker.orgnr import normalise
from worker.registry.outcomes import OUT_OF_SCOPE_CODES, RegistryNotice, notice_for
from worker.registry.port import RegistryProvider
from worker.retention.minimise import mask_values, sole_proprietor
from worker.sync import preview
from worker.sync.company_cache import lookup_once
from worker.sync.policies import RecordPlan, plan_record
from worker.sync.runtime import (
    Runtime,
    SharedStores,
    shared_stores,
)

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
    review: int = 0  # field changes sent to review (policy ``review``) instead of being written
    reviews: list[ReviewItem] = field(default_factory=list)  # those changes, queued with the writes
    notices: list[Failure] = field(default_factory=list)  # registry outcomes that are not failures
    skipped: dict[str, str] = field(
        default_factory=dict
    )  # record Id -> why it was left alone (opted out, ...)
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
            review=self.review,
            **{notice.counter: noticed[notice.value] for notice in RegistryNotice},
        )

    def settled(self) -> Settled:
        """What this attempt did to its records, for the ``planned`` events of a changes run."""
        return Settled(
            failed={failure.record_id: failure.error_code for failure in self.failures},
            skipped=self.skipped,
            reviewed={(item.record_id, item.field) for item in self.reviews},
        )

    def ledger_rows(self) -> list[Failure]:
        """The failures, and the notices of records that did not fail (one row per record: a failure wins)."""
        failed = {failure.record_id for failure in self.failures}
        return self.failures + [notice for notice in self.notices if notice.record_id not in failed]


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
        self.private: set[str] = set()  # sole proprietorships: counted in a dry run, never sampled
        self.origins: Origins = {}  # a changes run's records: the feed item behind each planned field

    def run(self) -> Outcome:
        with session_scope() as session:
            self.origins = planned.origins(session, self.claim.run_id, self.claim.record_ids)
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
        self.outcome.skipped.update((rid, "opted out") for rid in records if rid not in kept)
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
            if sole_proprietor(company):
                self.private.add(record_id)
            plan = self._plan(record_id, key, records[record_id], company, state.get(record_id, {}))
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
            self.outcome.skipped[record_id] = "out of the registry's scope"
            return None
        code = result.error_code if result and result.error_code else "REGISTRY_NO_ANSWER"
        message = result.error_message if result and result.error_message else "no registry answer"
        self._fail(record_id, key.org_number, code, message)
        return None

    def _plan(
        self,
        record_id: str,
        key: CompanyKey,
        record: CrmRecord,
        company: Company,
        fields: dict[str, FieldState],
    ) -> RecordPlan | None:
        """The record's changes, or None after counting it unchanged (or updated by an earlier attempt)."""
        confirmed = {name: s.confirmed_hash for name, s in fields.items() if s.confirmed_hash}
        plan = plan_record(record, company, self.spec.mapping, confirmed)
        self.outcome.protected += len(plan.protected)
        self._hold_for_review(record_id, key, plan)
        if plan.changes:
            return plan
        if self._written_by_this_run(record, fields):
            self.outcome.updated += 1
            self.outcome.written_ok.append(record_id)
        else:
            self.outcome.unchanged += 1
        return None

    def _hold_for_review(self, record_id: str, key: CompanyKey, plan: RecordPlan) -> None:
        """Count the record's ``review`` changes and keep them for the write step (never written)."""
        full = Origin.full_run(self.claim.run_id)
        feed = self.origins.get(record_id, {})
        self.outcome.review += len(plan.review)
        self.outcome.reviews += [
            ReviewItem(feed.get(name, full), record_id, key, name, old, new)
            for name, (old, new) in plan.review.items()
        ]

    def _written_by_this_run(self, record: CrmRecord, fields: dict[str, FieldState]) -> bool:
        """An earlier attempt of this run wrote this record and then died before recording it."""
        pending = {name: s for name, s in fields.items() if s.pending_run_id == self.claim.run_id}
        return bool(pending) and all(
            value_hash(record.get(name)) == s.pending_hash for name, s in pending.items()
        )

    def _preview(self, records: dict[str, CrmRecord], plans: dict[str, RecordPlan]) -> None:
        """Dry run: tally what would change; no write, no pending hash. ``updated`` counts would-be updates."""
        self.outcome.field_changes = preview.tally(records, plans, self.private)
        self.outcome.updated += len(plans)

    def _write(self, plans: dict[str, RecordPlan]) -> None:
        if not plans and not self.outcome.reviews:
            return
        with session_scope() as session:
            # One transaction with the pending hashes and the review queue: the PATCH leaves with a fresh lease,
            # or not at all; a retried attempt finds its review changes waiting and does not add them twice.
            self._still_mine(session)
            events.record_review(session, self.runtime.connection_id, self.outcome.reviews)
            writes.mark_pending(
                session,
                self.runtime.connection_id,
                self.claim.run_id,
                {rid: p.changes for rid, p in plans.items()},
            )
        if not plans:
            return
        payload = [{"Id": record_id, **plan.changes} for record_id, plan in plans.items()]
        self._apply_results(self.crm.update(payload), plans)

    def _apply_results(self, results: Iterable[WriteResult], plans: dict[str, RecordPlan]) -> None:
        for result in results:
            if result.success:
                self.outcome.updated += 1
                self.outcome.written_ok.append(result.record_id)
            else:
                self.outcome.written_failed.append(result.record_id)
                code = result.error_code or "CRM_WRITE_FAILED"
                self._fail(result.record_id, None, code, _stored_message(code, result.message or ""))

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


def _stored_message(code: str, message: str) -> str:
    """A write failure's message as the ledger keeps it: Salesforce's with its quoted values and long numbers
    masked (a validation rule may quote CRM values); regsync's own value-fit refusal as it is (it names only a
    picklist value of the registry's mapping, which the admin needs to add)."""
    return message if code == VALUE_DOES_NOT_FIT else mask_values(message)
