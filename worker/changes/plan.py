"""The changes planner: plan a ``changes`` run from the CRM's SystemModstamp delta and the registry's change feed.

Steps, each page in ONE ledger transaction (so a planner killed mid-page neither loses a change nor applies one
twice; the next planner re-reads the page from the stored watermark):

0. Carried over: changes an earlier run planned but never applied (it was cancelled or failed before their chunks
   ran, and the watermark is past them) are planned again, and their events move to this run.
1. CRM side: ``keyindex.refresh_delta``; the records whose key was added or edited are chunked in the delta
   page's transaction (``on_changed``).
2. Feed: from the ``feed:<provider>:<country>`` watermark (a first run starts at the cutover: the start of the
   connection's last successful full run, else now), per page: drop items already applied (``feed_seen``),
   match keys to records (``keyindex.records_for``: one query per page), decide per change type
   (PROTOCOLS.md 2.5), store chunks for records this run has not planned yet, record ``planned`` (or final
   ``unmapped``/``skipped``) events, purge what the ledger keeps about removed companies, count, and move the
   watermark.

The chunks are ordinary chunks (re-read, opt-out, policies, budget, pump); the chunk turns each ``planned``
event into ``synced``, ``review`` or ``failed`` (worker.changes.planned). A FeedGap fails the run (FEED_GAP,
"run a full reconcile") and opens a ``feed_gap`` alert; the watermark stays.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from config.settings import Settings
from worker.changes import keyindex
from worker.changes.events import Origin, OutcomeItem, record_outcomes
from worker.changes.models import (
    ChangeEvent,
    ChangeOutcome,
    ChangeType,
    FeedSeen,
    KeyIndexEntry,
    Watermark,
)
from worker.company import CompanyKey
from worker.crm.port import CrmClient
from worker.feeds.factory import feed_for, feed_http
from worker.feeds.paths import canonical_fields
from worker.feeds.port import ChangeFeed, FeedChange, FeedPage
from worker.infra.dispatch import Dispatcher
from worker.ledger import chunks, runs
from worker.ledger.db import session_scope
from worker.ledger.models import FINAL_RUN_STATES, Chunk, Run, RunMode, RunStatus, utcnow
from worker.ledger.upsert import upsert
from worker.retention.erase import erase_removed
from worker.sync.company_cache import field_of
from worker.sync.outcomes import PlanOutcome
from worker.sync.plan import Planner
from worker.sync.runtime import ClientFactory, Runtime, open_clients, shared_stores

log = logging.getLogger(__name__)

#: Proff re-reads its last day: items applied within this long are remembered (``feed_seen``), older ones pruned.
SEEN_FOR = dt.timedelta(days=3)
#: Feeds whose items can come again (an overlap day) and are de-duplicated on their item id.
OVERLAPPING = frozenset({"proff"})
ONCE_PER_RUN = "the record is synced once per run: an earlier page of this run planned it (item {item})"
PURGED = "[purged: the company was removed from the register]"


class _Stopped(Exception):
    """The run was cancelled or failed: roll the current delta page back (its records stay unread)."""


def plan_changes(
    run_id: int,
    dispatch: Dispatcher,
    *,
    settings: Settings | None = None,
    clients: ClientFactory = open_clients,
    last_attempt: bool = False,
) -> PlanOutcome:
    """Plan (or resume planning) a ``changes`` run: the plan task's entry (worker.sync.plan.plan_run claims the
    run and hands a ``changes`` run to :class:`ChangesPlanner`)."""
    from worker.sync.plan import plan_run

    return plan_run(run_id, dispatch, settings=settings, clients=clients, last_attempt=last_attempt)


@dataclass(slots=True)
class Batch:
    """What one ledger transaction plans: records to chunk (in order, each once) with their keys."""

    records: dict[str, CompanyKey] = field(default_factory=dict)
    events: list[OutcomeItem] = field(default_factory=list)
    removed: set[CompanyKey] = field(default_factory=set)
    matched: int = 0
    unmapped: int = 0
    seen: int = 0

    def plan(self, record_id: str, key: CompanyKey) -> None:
        self.records.setdefault(record_id, key)


class ChangesPlanner(Planner):
    """Plans one ``changes`` run; leases, heartbeats and the pump as :class:`worker.sync.plan.Planner`."""

    def __init__(
        self, run: Run, runtime: Runtime, crm: CrmClient, dispatch: Dispatcher, settings: Settings
    ) -> None:
        super().__init__(run, runtime, crm, dispatch, settings)
        self.runtime = runtime
        self.connection_id = run.connection_id
        self.object = runtime.spec.salesforce.object
        self.mapped = frozenset(self.spec.mapping)
        self.provider = runtime.spec.registry.provider
        self.planned_ids: set[str] = set()
        self.pending: list[int] = []
        self.feed_calls_reported = 0
        self.planned_later: list[str] = []
        self.feed: ChangeFeed | None = None

    def run(self) -> None:
        with session_scope() as session:
            self.planned_ids = _planned_records(session, self.run_id)
        if not self.stopping:
            self._carry_over()
        if not self.stopping:
            self._crm_delta()
        if not self.stopping:
            self._feed()
        self._close()

    # --- carried over ---------------------------------------------------------------------------------------

    def _carry_over(self) -> None:
        """Changes an earlier run planned but never applied (cancelled or failed before their chunk ran: the feed's
        watermark is already past them) are planned again here and their events move to this run."""
        with self._page_session() as session:
            self._still_mine(session)
            if self._stopped(session):
                return
            rows = session.execute(
                select(ChangeEvent.id, ChangeEvent.record_id, ChangeEvent.country, ChangeEvent.org_number)
                .join(Run, Run.id == ChangeEvent.run_id)
                .where(
                    ChangeEvent.connection_id == self.connection_id,
                    ChangeEvent.outcome == ChangeOutcome.PLANNED.value,
                    Run.id != self.run_id,
                    Run.status.in_([status.value for status in FINAL_RUN_STATES]),
                )
            ).all()
            if not rows:
                return
            batch = Batch()
            for _, record_id, country, org_number in rows:
                if record_id not in self.planned_ids:
                    batch.plan(str(record_id), CompanyKey(str(country), str(org_number)))
            session.execute(
                update(ChangeEvent)
                .where(ChangeEvent.id.in_([row[0] for row in rows]))
                .values(run_id=self.run_id)
            )
            self._store(session, batch)
        log.info(
            "changes run: %d changes of earlier runs carried over (%d records)",
            len(rows),
            len(batch.records),
            extra={"run_id": self.run_id},
        )

    # --- CRM side --------------------------------------------------------------------------------------------

    def _crm_delta(self) -> None:
        try:
            delta = keyindex.refresh_delta(
                self._page_session, self.crm, self.connection_id, self.spec, on_changed=self._crm_changed
            )
        except _Stopped:
            log.info("changes run stopped while reading the CRM delta", extra={"run_id": self.run_id})
            return
        log.info("changes run: CRM delta read", extra={"run_id": self.run_id, "changed": len(delta.changed)})

    def _crm_changed(self, session: Session, record_ids: list[str]) -> None:
        """In the delta page's transaction: chunk the records whose key was added or edited (a stopped run rolls
        the page back: its keys and the crm watermark stay, so the next run reads these records again)."""
        self._still_mine(session)
        if self._stopped(session):
            raise _Stopped
        rows = session.execute(
            select(KeyIndexEntry.record_id, KeyIndexEntry.country, KeyIndexEntry.org_number).where(
                KeyIndexEntry.connection_id == self.connection_id,
                KeyIndexEntry.object == self.object,
                KeyIndexEntry.record_id.in_(record_ids),
            )
        )
        batch = Batch()
        for record_id, country, org_number in rows:
            if org_number is not None and record_id not in self.planned_ids:
                batch.plan(record_id, CompanyKey(str(country), str(org_number)))
        self._store(session, batch)

    @contextmanager
    def _page_session(self) -> Iterator[Session]:
        """A page's transaction; its chunks are sent once it committed."""
        with session_scope() as session:
            yield session
        self._after_commit()

    # --- feed ------------------------------------------------------------------------------------------------

    def _feed(self) -> None:
        stores = shared_stores(self.settings)
        http = feed_http(self.spec.registry, stores.limiter(self.runtime), self.settings)
        try:
            feed = feed_for(self.spec.registry, self.runtime.registry_token, http, country=self._country())
            self.feed = feed
            position = self._position(feed)
            self._prune_seen(feed.source)
            for page in feed.pages(position, utcnow()):
                self._heartbeat_if_due()
                self._feed_page(feed, page)
                if self.stopping:
                    break
        finally:
            http.client.close()

    def _country(self) -> str:
        return (self.spec.salesforce.country or "NO").upper()

    def _position(self, feed: ChangeFeed) -> str:
        with session_scope() as session:
            stored = session.scalar(
                select(Watermark.position).where(
                    Watermark.connection_id == self.connection_id, Watermark.source == feed.source
                )
            )
            if stored is not None:
                return stored
            cutover = _cutover(session, self.connection_id)
        at = cutover or utcnow()
        log.info(
            "changes run: first read of %s, from %s (%s)",
            feed.source,
            at.isoformat(),
            "the start of the last successful full run" if cutover else "now: no full run succeeded yet",
            extra={"run_id": self.run_id},
        )
        return feed.start_position(at)

    def _prune_seen(self, source: str) -> None:
        with session_scope() as session:
            session.execute(
                delete(FeedSeen).where(
                    FeedSeen.connection_id == self.connection_id,
                    FeedSeen.source == source,
                    FeedSeen.seen_at < utcnow() - SEEN_FOR,
                )
            )

    def _feed_page(self, feed: ChangeFeed, page: FeedPage) -> None:
        """One page's effects, counts and watermark in one transaction (none once the run stopped: the watermark
        then covers only pages whose chunks were stored while the run could still sync them)."""
        with self._page_session() as session:
            self._still_mine(session)
            if self._stopped(session):
                return
            changes = self._unseen(session, feed.source, page.changes)
            matches = keyindex.records_for(session, self.connection_id, self.object, {c.key for c in changes})
            batch = Batch(seen=len(changes))
            for change in changes:
                self._decide(batch, feed.source, change, matches.get(change.key, []))
            self._store(session, batch)
            _purge(session, self.connection_id, batch.removed)
            self._move(session, feed.source, page)

    def _unseen(self, session: Session, source: str, changes: list[FeedChange]) -> list[FeedChange]:
        """The items not applied before (overlapping feeds only), remembered in this transaction."""
        if self.provider not in OVERLAPPING or not changes:
            return changes
        ids = list(dict.fromkeys(c.item_id for c in changes))
        seen = set(
            session.scalars(
                select(FeedSeen.item_id).where(
                    FeedSeen.connection_id == self.connection_id,
                    FeedSeen.source == source,
                    FeedSeen.item_id.in_(ids),
                )
            )
        )
        fresh = [c for c in changes if c.item_id not in seen]
        now = utcnow()
        rows = [
            {"connection_id": self.connection_id, "source": source, "item_id": item, "seen_at": now}
            for item in dict.fromkeys(c.item_id for c in fresh)
        ]
        upsert(session, FeedSeen.__table__, rows, ("connection_id", "source", "item_id"), ("seen_at",))
        return fresh

    def _decide(self, batch: Batch, source: str, change: FeedChange, record_ids: list[str]) -> None:
        """PROTOCOLS.md 2.5: what one change does to the records holding its key."""
        if not record_ids:
            return  # not in this CRM (a NEW unit the CRM does not hold is ignored like any other)
        batch.matched += 1
        origin = Origin(source, change.item_id, change.type, self.run_id)
        touched = self._touched(change)
        if not touched:
            batch.unmapped += 1
            batch.events += [
                OutcomeItem(origin, change.key, ChangeOutcome.UNMAPPED, rid) for rid in record_ids
            ]
            return
        if change.type is ChangeType.REMOVED:
            batch.removed.add(change.key)
        for record_id in record_ids:
            if record_id in self.planned_ids:
                reason = ONCE_PER_RUN.format(item=change.item_id)
                batch.events.append(
                    OutcomeItem(origin, change.key, ChangeOutcome.SKIPPED, record_id, None, reason)
                )
                continue
            batch.plan(record_id, change.key)
            batch.events += [
                OutcomeItem(origin, change.key, ChangeOutcome.PLANNED, record_id, name)
                for name in sorted(touched)
            ]

    def _touched(self, change: FeedChange) -> frozenset[str]:
        """The mapped canonical fields a change may move: a CHANGED item by its paths, any other type all."""
        if change.type is not ChangeType.CHANGED:
            return self.mapped
        fields = canonical_fields(self.provider, change.paths)
        return self.mapped if fields is None else fields & self.mapped

    def _move(self, session: Session, source: str, page: FeedPage) -> None:
        newest = max((c.at for c in page.changes), default=None)
        details = {
            "items": len(page.changes),
            "first": page.changes[0].item_id if page.changes else None,
            "last": page.changes[-1].item_id if page.changes else None,
            "newest_at": None if newest is None else newest.isoformat(),
            "read_at": utcnow().isoformat(),
            "run_id": self.run_id,
        }
        row = {
            "connection_id": self.connection_id,
            "source": source,
            "position": page.position,
            "details": details,
            "updated_at": utcnow(),
        }
        upsert(
            session,
            Watermark.__table__,
            [row],
            ("connection_id", "source"),
            ("position", "details", "updated_at"),
        )

    # --- storing ---------------------------------------------------------------------------------------------

    def _stopped(self, session: Session) -> bool:
        """Whether the run was cancelled or failed (read under the run row's lock, taken by ``_still_mine``)."""
        run = runs.get_run(session, self.run_id)
        session.refresh(run)
        self.stopping = self.stopping or bool(run.cancel_requested or run.error_code)
        return self.stopping

    def _store(self, session: Session, batch: Batch) -> None:
        """Chunks, events and counts of one page, in the caller's transaction."""
        run = runs.get_run(session, self.run_id)
        self.stopping = bool(run.cancel_requested or run.error_code)
        ids = list(batch.records)
        size = self.chunk_size
        batches = [ids[i : i + size] for i in range(0, len(ids), size)]
        keys = [list(dict.fromkeys(field_of(batch.records[r]) for r in part)) for part in batches]
        self.pending += chunks.add_chunks(session, run, batches, utcnow(), keys)
        planned = [e for e in batch.events if e.outcome is ChangeOutcome.PLANNED]
        record_outcomes(session, self.connection_id, [e for e in batch.events if e not in planned])
        _record_planned(session, self.connection_id, planned)
        self._count(session, batch, final=False)
        self.planned_later = ids

    def _after_commit(self) -> None:
        self.planned_ids.update(self.planned_later)
        self.planned_later = []
        ids, self.pending = self.pending, []
        if ids:
            self._start_pump()
            self.dispatch.sync(ids)

    def _count(self, session: Session, batch: Batch, *, final: bool) -> None:  # type: ignore[override]
        now = utcnow()
        crm_calls, self.calls_reported = self.crm.calls - self.calls_reported, self.crm.calls
        feed = self.feed
        feed_calls = 0 if feed is None else feed.calls - self.feed_calls_reported
        self.feed_calls_reported += feed_calls
        values: dict[str, object] = {
            "planned": Run.planned + len(batch.records),
            "crm_calls": Run.crm_calls + crm_calls,
            "registry_calls": Run.registry_calls + feed_calls,
            "changes_seen": Run.changes_seen + batch.seen,
            "changes_matched": Run.changes_matched + batch.matched,
            "changes_unmapped": Run.changes_unmapped + batch.unmapped,
            "feed_pages": Run.feed_pages + (1 if feed is not None and not final else 0),
            "heartbeat_at": now,
            "plan_lease_until": now + dt.timedelta(seconds=self.settings.chunk_lease_s),
        }
        if final:
            values["planned_complete"] = True
        self._record_usage(session, values)
        session.execute(update(Run).where(Run.id == self.run_id).values(**values))

    def _close(self) -> None:
        with session_scope() as session:
            self._still_mine(session)
            self._count(session, Batch(), final=True)
            closed = runs.maybe_close(session, self.run_id, utcnow(), listener=self.dispatch)
        if closed is not None:
            log.info("run finished", extra={"run_id": self.run_id, "status": closed.value})


# --- helpers -------------------------------------------------------------------------------------------------


def _planned_records(session: Session, run_id: int) -> set[str]:
    """The records earlier planners of this run chunked (a resumed planner must not plan them again)."""
    planned: set[str] = set()
    for record_ids in session.scalars(select(Chunk.record_ids).where(Chunk.run_id == run_id)):
        planned.update(record_ids)
    return planned


def _cutover(session: Session, connection_id: int) -> dt.datetime | None:
    """The start of the connection's last successful full run: the feed is read from there on a first run."""
    done = (RunStatus.SUCCEEDED.value, RunStatus.PARTIALLY_FAILED.value)
    return session.scalar(
        select(Run.started_at)
        .where(
            Run.connection_id == connection_id,
            Run.mode == RunMode.FULL.value,
            Run.status.in_(done),
            Run.started_at.is_not(None),
        )
        .order_by(Run.started_at.desc())
        .limit(1)
    )


def _record_planned(session: Session, connection_id: int, items: Sequence[OutcomeItem]) -> None:
    """``planned`` events (record_outcomes refuses no outcome but review; kept apart to say what they are)."""
    session.add_all(
        ChangeEvent(
            connection_id=connection_id,
            run_id=item.origin.run_id,
            source=item.origin.source,
            item_id=item.origin.item_id,
            change_type=item.origin.change_type.value,
            country=item.key.country,
            org_number=item.key.org_number,
            record_id=item.record_id,
            field=item.field,
            outcome=ChangeOutcome.PLANNED.value,
        )
        for item in items
    )


def _purge(session: Session, connection_id: int, keys: set[CompanyKey]) -> None:
    """A company removed from the register: forget what the ledger stores about its org number."""
    erase_removed(session, connection_id, keys)
