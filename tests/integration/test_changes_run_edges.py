"""Issue 14: a changes run's edges, in process (production planner and chunks, TLS sandbox, PostgreSQL).

- acceptance 4: an org number edited in the CRM between runs is synced by the next changes run, found with ONE
  SystemModstamp query, with no feed change for it;
- a ``review`` field inside a changes run waits with the feed item's origin, nothing is written for it, and
  approving it writes it;
- cancelling a changes run stops planning, and the watermark covers only pages whose effects committed: the
  next run applies the rest, every change exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import get_settings
from tests.conftest import RegsyncEnv
from tests.integration.changes_world import ChangesWorld, changes_world, renamed
from worker.changes import plan as changes_plan
from worker.changes import review
from worker.changes.models import ChangeOutcome, ChangeType
from worker.errors import FeedMalformed
from worker.feeds.factory import feed_for
from worker.ledger.cancel import cancel_run
from worker.ledger.db import session_scope
from worker.ledger.models import utcnow
from worker.sandbox.registry import registry_view
from worker.sandbox.stack import DEMO_MAPPING
from worker.sync.chunk import sync_chunk

pytestmark = pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)

SOURCE = "feed:brreg:NO"


@pytest.fixture
def brreg(env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChangesWorld]:
    with changes_world(tmp_path, monkeypatch, "brreg") as world:
        world.full_run()
        yield world


def _queries(requests: list[Any]) -> list[str]:
    """The SOQL of every query request (``/query`` or ``/query/``; queryMore pages carry none)."""
    return [r.query["q"][-1] for r in requests if "/query" in r.path and "q" in r.query]


@pytest.mark.timeout(60)
def test_an_org_number_edited_between_runs_is_synced_with_one_modstamp_query(brreg: ChangesWorld) -> None:
    world = brreg
    edited_company, target = world.singles(2)
    record = world.record_of(edited_company)
    expected = registry_view("brreg", target).name
    assert world.sf.snapshot()[record]["Name"] != expected
    world.sf.edit(record, Org_Number__c=target.org_number)  # a person edits it: SystemModstamp moves
    before, written_before = len(world.sf.api_requests()), len(world.sf.changes)

    run = world.changes_run()
    queries = _queries(world.sf.api_requests()[before:])
    written = world.sf.changes[written_before:]

    assert run["status"] == "succeeded", run
    assert [c.record_id for c in written] == [record]
    assert world.sf.snapshot()[record]["Name"] == expected
    assert len([q for q in queries if "SystemModstamp" in q]) == 1, queries
    assert not [q for q in queries if "WHERE" not in q], queries  # no full read of the object
    assert (run["planned"], run["changes_seen"], run["changes_matched"]) == (1, 0, 0)
    assert world.events(run["id"]) == []  # no feed change for it: synced from the CRM side alone


@pytest.mark.timeout(60)
def test_a_review_field_in_a_changes_run_waits_with_the_feed_origin_until_approved(
    env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mapping = {**DEMO_MAPPING, "name": {"field": "Name", "policy": "review"}}
    with changes_world(tmp_path, monkeypatch, "brreg", mapping=mapping) as world:
        world.full_run()
        waiting = {e.record_id for e in world.events() if e.outcome == ChangeOutcome.REVIEW.value}
        company = next(c for c in world.singles(30) if world.record_of(c) not in waiting)
        record = world.record_of(company)
        old_name = world.sf.snapshot()[record]["Name"]
        item = world.registry.script_change(renamed(company)).brreg_id
        written_before = len(world.sf.changes)

        run = world.changes_run()
        events = [e for e in world.events(run["id"]) if e.record_id == record]
        unwritten = world.sf.changes[written_before:]

        with review.connection_crm(world.connection_id()) as (spec, crm):
            decisions = review.approve(spec, world.connection_id(), [e.id for e in events], "alice", crm)
        approved = world.events(run["id"])
        after = world.sf.snapshot()[record]["Name"]

    assert run["status"] == "succeeded", run
    assert [(e.field, e.outcome, e.source, e.item_id, e.change_type) for e in events] == [
        ("name", ChangeOutcome.REVIEW.value, SOURCE, str(item), ChangeType.CHANGED.value)
    ]
    assert (events[0].old_value, events[0].new_value) == (old_name, renamed(company).name)
    assert run["review"] == 1
    assert [c.record_id for c in unwritten if c.record_id == record] == []  # nothing written for it
    assert [d.outcome for d in decisions] == [ChangeOutcome.APPROVED]
    assert after == renamed(company).name
    assert [(e.outcome, e.new_value) for e in approved if e.record_id == record] == [
        (ChangeOutcome.APPROVED.value, None)
    ]


def _thirty_renames_in_pages_of_ten(
    world: ChangesWorld, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Any], list[int]]:
    """Thirty companies of the CRM renamed in the feed, which the planner reads in three pages of ten."""
    monkeypatch.setattr(changes_plan, "feed_for", lambda *a, **k: feed_for(*a, **{**k, "size": 10}))
    companies = world.singles(30)
    return companies, [world.registry.script_change(renamed(c)).brreg_id for c in companies]


@pytest.mark.timeout(60)
def test_cancel_stops_planning_and_the_watermark_covers_only_committed_pages(
    brreg: ChangesWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = brreg
    companies, ids = _thirty_renames_in_pages_of_ten(world, monkeypatch)
    dispatch = world.world.dispatch
    cancelled: list[int] = []

    def first_page_then_cancel(chunk_ids: list[int]) -> None:
        """The first page's chunks run now (its effects commit), then the user cancels."""
        if cancelled:
            return
        dispatch.chunks = [c for c in dispatch.chunks if c not in chunk_ids]
        for chunk_id in chunk_ids:
            sync_chunk(chunk_id, settings=get_settings())
        with session_scope() as session:
            cancel_run(session, dispatch_run(), utcnow())
        cancelled.append(1)

    def dispatch_run() -> int:
        return max(e.run_id for e in world.events() if e.run_id is not None)

    dispatch.on_sync = first_page_then_cancel
    written_before = len(world.sf.changes)
    first = world.changes_run()
    first_written = [c.record_id for c in world.sf.changes[written_before:]]
    position = world.watermark(SOURCE)
    dispatch.on_sync = None
    second = world.changes_run()
    all_written = [c.record_id for c in world.sf.changes[written_before:]]
    records = [world.record_of(c) for c in companies]

    assert first["status"] == "cancelled", first
    assert position == str(ids[9])  # the first page only: the second was never stored
    assert sorted(first_written) == sorted(records[:10])
    assert (first["feed_pages"], first["changes_seen"], first["planned"]) == (1, 10, 10)
    assert second["status"] == "succeeded", second
    assert sorted(all_written) == sorted(records)  # the rest came with the next run, each once
    assert world.watermark(SOURCE) == str(ids[-1])
    assert second["changes_seen"] == 20


@pytest.mark.timeout(60)
def test_changes_planned_by_a_run_cancelled_before_its_chunks_ran_are_carried_to_the_next_run(
    brreg: ChangesWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first page commits (its chunks stored, the watermark past it), then the run is cancelled before any of
    its chunks runs: those changes are not lost, the next changes run applies them, each once."""
    world = brreg
    companies, ids = _thirty_renames_in_pages_of_ten(world, monkeypatch)
    dispatch = world.world.dispatch

    def cancel_before_the_chunks_run(_chunk_ids: list[int]) -> None:
        if dispatch.on_sync is None:
            return
        run_id = max(e.run_id for e in world.events() if e.run_id is not None)
        with session_scope() as session:
            cancel_run(session, run_id, utcnow())
        dispatch.on_sync = None

    dispatch.on_sync = cancel_before_the_chunks_run
    written_before = len(world.sf.changes)
    first = world.changes_run()
    stranded = [e for e in world.events(first["id"]) if e.outcome == ChangeOutcome.PLANNED.value]
    position, first_wrote = world.watermark(SOURCE), len(world.sf.changes) - written_before
    second = world.changes_run()
    written = [c.record_id for c in world.sf.changes[written_before:]]
    records = [world.record_of(c) for c in companies]

    assert first["status"] == "cancelled", first
    assert position == str(ids[9]) and first_wrote == 0  # page 1 committed, none of its chunks ran
    assert {e.record_id for e in stranded} == set(records[:10])  # ... and its changes waited, not "synced"
    assert second["status"] == "succeeded", second
    assert sorted(written) == sorted(records)  # the carried 10 and the other 20, each written once
    carried = [e for e in world.events(second["id"]) if e.record_id in set(records[:10])]
    assert carried and {e.outcome for e in carried} == {ChangeOutcome.SYNCED.value}
    assert not [e for e in world.events() if e.outcome == ChangeOutcome.PLANNED.value]
    assert world.watermark(SOURCE) == str(ids[-1])


class _BreaksAfterOnePage:
    """The real feed, whose second page comes back malformed (a registry answering garbage mid-feed)."""

    def __init__(self, feed: Any) -> None:
        self._feed = feed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._feed, name)

    def pages(self, position: str, now: Any) -> Iterator[Any]:
        pages = self._feed.pages(position, now)
        yield next(pages)
        raise FeedMalformed("the change feed's page 2 has no _embedded list: nothing of it was applied")


@pytest.mark.timeout(60)
def test_a_feed_malformed_mid_run_fails_the_run_and_the_next_run_applies_every_change_once(
    brreg: ChangesWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = brreg
    broken: list[int] = []

    def feed(*args: Any, **kwargs: Any) -> Any:
        real = feed_for(*args, **{**kwargs, "size": 10})
        if broken:
            return real
        broken.append(1)
        return _BreaksAfterOnePage(real)

    monkeypatch.setattr(changes_plan, "feed_for", feed)
    companies = world.singles(30)
    ids = [world.registry.script_change(renamed(c)).brreg_id for c in companies]
    written_before = len(world.sf.changes)
    first = world.changes_run()
    position = world.watermark(SOURCE)
    second = world.changes_run()
    written = [c.record_id for c in world.sf.changes[written_before:]]
    records = [world.record_of(c) for c in companies]

    assert first["status"] == "failed" and first["error_code"] == "FEED_MALFORMED", first
    assert position == str(ids[9])  # page 1's effects committed; page 2 was never applied
    assert second["status"] == "succeeded", second
    assert sorted(written) == sorted(records)  # nothing lost, nothing written twice
    assert not [e for e in world.events() if e.outcome == ChangeOutcome.PLANNED.value]
    assert world.watermark(SOURCE) == str(ids[-1])
