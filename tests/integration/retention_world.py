"""A ledger with one connection and one row of every kind of stored data, at a chosen age (not a test module).

``seed`` writes what a run, a dry run, a change feed, a review and a notice leave behind, all stamped ``at``,
for one record and one org number, so retention and erasure tests can count what is left.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass

from sqlalchemy.orm import Session

from tests.connection_files import BRREG, acme_toml
from worker.alerts.models import AlertDelivery
from worker.changes.models import ChangeEvent, ChangeOutcome, ChangeType, FeedSeen, KeyIndexEntry
from worker.connections.apply import apply_connection
from worker.connections.spec import parse_spec
from worker.ledger.backfill_models import RunFieldChange
from worker.ledger.db import session_scope
from worker.ledger.models import Chunk, ChunkStatus, RecordFailure, RecordWrite, Run, RunStatus

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def apply_acme(extra: str = "") -> int:
    """Apply the `acme` connection (brreg, Name mapped, ``extra`` tables added); returns its id."""
    spec = parse_spec(tomllib.loads(acme_toml(registry=BRREG, extra=extra)))
    with session_scope() as session:
        return apply_connection(session, spec, "test").connection_id


@dataclass(frozen=True)
class Trace:
    """One company and one of its CRM records."""

    record_id: str
    org_number: str
    name: str = "Kari Nordmann ENK"


def _run(session: Session, connection_id: int, at: dt.datetime, mode: str = "full") -> Run:
    run = Run(
        connection_id=connection_id,
        kind="manual",
        mode=mode,
        status=RunStatus.SUCCEEDED.value,
        triggered_by="test",
        queued_at=at,
        started_at=at,
        finished_at=at,
        options={},
    )
    session.add(run)
    session.flush()
    return run


def seed(connection_id: int, at: dt.datetime, trace: Trace) -> int:
    """One row of every kind for ``trace``, stamped ``at``; returns the run's id."""
    with session_scope() as session:
        run = _run(session, connection_id, at)
        chunk = Chunk(
            run_id=run.id,
            seq=0,
            status=ChunkStatus.DONE.value,
            record_ids=[trace.record_id],
            org_keys=[f"NO:{trace.org_number}"],
            enqueued_at=at,
            finished_at=at,
        )
        session.add(chunk)
        session.flush()
        session.add_all(_rows(connection_id, run.id, chunk.id, at, trace))
        return run.id


def _rows(connection_id: int, run_id: int, chunk_id: int, at: dt.datetime, trace: Trace) -> list[object]:
    return [
        RecordFailure(
            run_id=run_id,
            chunk_id=chunk_id,
            record_id=trace.record_id,
            org_number=trace.org_number,
            error_code="FIELD_CUSTOM_VALIDATION_EXCEPTION",
            message="refused",
            created_at=at,
        ),
        RunFieldChange(
            run_id=run_id,
            field="Name",
            count=1,
            samples=[{"record_id": trace.record_id, "old": trace.name, "new": trace.name + " AS"}],
        ),
        _event(connection_id, run_id, at, trace, ChangeOutcome.SYNCED),
        _event(connection_id, run_id, at, trace, ChangeOutcome.REVIEW),
        AlertDelivery(connection_id=connection_id, channel="webhook", notice="alert", at=at, ok=True),
        RecordWrite(
            connection_id=connection_id, record_id=trace.record_id, field="Name", value_hash="h" * 64
        ),
        KeyIndexEntry(
            connection_id=connection_id,
            object="Account",
            record_id=trace.record_id,
            country="NO",
            org_number=trace.org_number,
            updated_at=at,
        ),
        FeedSeen(connection_id=connection_id, source="feed:brreg:NO", item_id=f"i{run_id}", seen_at=at),
    ]


def _event(
    connection_id: int, run_id: int, at: dt.datetime, trace: Trace, outcome: ChangeOutcome
) -> ChangeEvent:
    review = outcome is ChangeOutcome.REVIEW
    return ChangeEvent(
        connection_id=connection_id,
        run_id=run_id,
        source="feed:brreg:NO",
        item_id=f"{run_id}{outcome}",
        change_type=ChangeType.CHANGED.value,
        country="NO",
        org_number=trace.org_number,
        record_id=trace.record_id,
        field="name",
        outcome=outcome.value,
        old_value=trace.name if review else None,
        new_value=trace.name + " AS" if review else None,
        created_at=at,
    )
