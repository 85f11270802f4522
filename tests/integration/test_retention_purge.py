"""Retention: one purge pass (frozen clock) removes each kind of data past its age, keeps what is inside it, keeps
run summaries, and leaves one audit event with counts only."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import RegsyncEnv
from tests.integration.retention_world import NOW, Trace, apply_acme, days_ago, seed
from worker.alerts.models import AlertDelivery
from worker.changes.models import ChangeEvent, ChangeOutcome, KeyIndexEntry
from worker.ledger.audit import append_event, verify_chain
from worker.ledger.backfill_models import RunFieldChange
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, Chunk, RecordFailure, RecordWrite, Run
from worker.retention.policy import PurgeKind
from worker.retention.purge import PURGE_ACTION, PurgeRequest, purge_connection

OLD, YOUNG = Trace("001000000000001AAA", "923609016"), Trace("001000000000002AAA", "974760673")


@pytest.fixture
def connection_id(env: RegsyncEnv) -> Iterator[int]:
    yield apply_acme()


def _count(session: Session, model: type[object], *where: object) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]


def _purge(**request: object) -> dict[str, int]:
    return purge_connection("acme", PurgeRequest(**request), "alice", NOW).counts  # type: ignore[arg-type]


def test_one_pass_removes_each_kind_past_its_age_and_keeps_run_summaries(connection_id: int) -> None:
    ancient = seed(connection_id, days_ago(500), Trace("001000000000009AAA", "910000000"))
    # OLD is past samples (7), failures (90), change events (90) and reviews (30), inside runs (400).
    old = seed(connection_id, days_ago(100), OLD)
    young = seed(connection_id, days_ago(3), YOUNG)  # inside every age

    counts = _purge()

    with session_scope() as session:
        runs = set(session.scalars(select(Run.id)))
        assert runs == {old, young}, "a run summary inside 400 days went, or one past it stayed"
        summary = session.get_one(Run, old)
        assert summary.status == "succeeded" and summary.finished_at == days_ago(100)
        for model in (RecordFailure, RunFieldChange, Chunk):
            assert set(session.scalars(select(model.run_id))) == {young}, model
        events = session.execute(select(ChangeEvent.run_id, ChangeEvent.outcome, ChangeEvent.old_value)).all()
        assert sorted(events, key=str) == sorted(
            [(young, "synced", None), (young, "review", YOUNG.name)], key=str
        ), "the old review change should have been deleted after it expired"
        deliveries = set(session.scalars(select(AlertDelivery.at)))
        assert deliveries == {days_ago(3)}
    # The details of the 500-day-old run went first, under their own ages; then its summary.
    assert counts["runs"] == 1 and counts["failures"] == 2 and counts["samples"] == 2
    assert counts["review_values"] == 2 and counts["alert_deliveries"] == 2
    assert ancient not in runs


def test_review_values_expire_before_their_event_is_deleted(connection_id: int) -> None:
    seed(connection_id, days_ago(40), OLD)  # past review_values_days (30), inside change_events_days (90)

    counts = _purge(kinds=frozenset({PurgeKind.REVIEW_VALUES}))

    with session_scope() as session:
        event = session.scalars(
            select(ChangeEvent).where(ChangeEvent.field == "name", ChangeEvent.reason.is_not(None))
        ).one()
    assert counts == {"review_values": 1}
    assert event.outcome == ChangeOutcome.SKIPPED.value and event.decided_by == "retention"
    assert event.old_value is None and event.new_value is None


def test_a_dry_run_counts_and_changes_nothing(connection_id: int) -> None:
    seed(connection_id, days_ago(100), OLD)

    counts = _purge(dry_run=True)

    with session_scope() as session:
        assert _count(session, RecordFailure) == 1 and _count(session, RunFieldChange) == 1
        assert _count(session, AuditEvent, AuditEvent.action == PURGE_ACTION) == 0
    assert counts["failures"] == 1 and counts["samples"] == 1 and counts["runs"] == 0


def test_older_than_purges_inside_the_policy_but_never_run_summaries(connection_id: int) -> None:
    seed(connection_id, days_ago(20), OLD)

    counts = _purge(older_than=dt.timedelta(days=10))

    with session_scope() as session:
        assert _count(session, RecordFailure) == 0 and _count(session, Run) == 1
    assert counts["failures"] == 1 and counts["runs"] == 0


def test_batches_are_bounded_and_drain_everything(connection_id: int) -> None:
    for n in range(7):
        seed(connection_id, days_ago(100 + n), Trace(f"0010000000000{n:02d}BBB", f"92360901{n}"))

    counts = _purge(kinds=frozenset({PurgeKind.FAILURES}), batch_rows=2)

    with session_scope() as session:
        assert _count(session, RecordFailure) == 0
    assert counts == {"failures": 7}


def test_a_purge_is_one_audit_event_with_counts_and_the_chain_still_verifies(connection_id: int) -> None:
    seed(connection_id, days_ago(100), OLD)

    _purge()

    with session_scope() as session:
        purges = list(session.scalars(select(AuditEvent).where(AuditEvent.action == PURGE_ACTION)))
        assert len(purges) == 1
        assert purges[0].after is not None and purges[0].after["counts"]["failures"] == 1
        text = str(purges[0].before) + str(purges[0].after)
        assert OLD.org_number not in text and OLD.record_id not in text
        append_event(session, actor="bob", action="test", target="x")
    with session_scope() as session:
        assert verify_chain(session).ok


def test_write_hashes_go_only_for_records_the_last_census_did_not_see(connection_id: int) -> None:
    seed(connection_id, days_ago(100), OLD)  # key index updated 100 days ago
    seed(connection_id, days_ago(1), YOUNG)  # a full run 1 day ago: YOUNG was seen, OLD was not

    counts = _purge(kinds=frozenset({PurgeKind.WRITE_HASHES, PurgeKind.KEY_INDEX}))

    with session_scope() as session:
        assert set(session.scalars(select(RecordWrite.record_id))) == {YOUNG.record_id}
        assert set(session.scalars(select(KeyIndexEntry.record_id))) == {YOUNG.record_id}
    assert counts == {"write_hashes": 1, "key_index": 1}


def test_write_hashes_stay_without_a_census(connection_id: int) -> None:
    with session_scope() as session:
        session.add(
            RecordWrite(connection_id=connection_id, record_id=OLD.record_id, field="Name", value_hash="h")
        )

    assert _purge(kinds=frozenset({PurgeKind.WRITE_HASHES})) == {}
