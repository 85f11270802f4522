"""Per kind of data, which rows of one connection a purge takes (primary keys) and what it does to them.

Every target selects primary keys in id order, so the purge takes them in bounded batches, one transaction each,
and never holds a long lock on a table that runs write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from worker.alerts.models import AlertDelivery
from worker.changes.models import ChangeEvent, ChangeOutcome, KeyIndexEntry
from worker.ledger.backfill_models import RunFieldChange
from worker.ledger.models import (
    FINAL_CHUNK_STATES,
    FINAL_RUN_STATES,
    Chunk,
    RecordFailure,
    RecordWrite,
    Run,
    RunMode,
    RunStatus,
    utcnow,
)
from worker.retention.policy import PurgeKind

#: The reason an expired review change carries (its values are gone: it can no longer be approved).
EXPIRED = "[expired: kept past the retention policy's review_values_days]"
#: Who decided an expired review change.
RETENTION_ACTOR = "retention"

_FINAL_RUNS = [s.value for s in FINAL_RUN_STATES]
_OPEN_EVENTS = [ChangeOutcome.REVIEW.value, ChangeOutcome.PLANNED.value]


@dataclass(frozen=True, slots=True)
class Target:
    """The rows of one kind a purge takes (``select`` of primary keys) and what happens to a batch of them."""

    select: Select[Any]
    apply: Callable[[Session, Sequence[Any]], None]


def _runs(connection_id: int, cutoff: dt.datetime) -> Select[int]:
    return select(Run.id).where(
        Run.connection_id == connection_id, Run.status.in_(_FINAL_RUNS), Run.queued_at < cutoff
    )


def _deleting(table: Any) -> Callable[[Session, Sequence[Any]], None]:
    def apply(session: Session, ids: Sequence[Any]) -> None:
        session.execute(delete(table).where(table.id.in_(ids)))

    return apply


def _expire_reviews(session: Session, ids: Sequence[Any]) -> None:
    session.execute(
        update(ChangeEvent)
        .where(ChangeEvent.id.in_(ids), ChangeEvent.outcome == ChangeOutcome.REVIEW.value)
        .values(
            outcome=ChangeOutcome.SKIPPED.value,
            reason=EXPIRED,
            old_value=None,
            new_value=None,
            decided_by=RETENTION_ACTOR,
            decided_at=utcnow(),
        )
    )


def _samples(connection_id: int, cutoff: dt.datetime) -> Target:
    query = select(RunFieldChange.id).where(RunFieldChange.run_id.in_(_runs(connection_id, cutoff)))
    return Target(query, _deleting(RunFieldChange))


def _failures(connection_id: int, cutoff: dt.datetime) -> Target:
    runs = select(Run.id).where(Run.connection_id == connection_id)
    query = select(RecordFailure.id).where(RecordFailure.run_id.in_(runs), RecordFailure.created_at < cutoff)
    return Target(query, _deleting(RecordFailure))


def _chunks(connection_id: int, cutoff: dt.datetime) -> Target:
    query = select(Chunk.id).where(
        Chunk.run_id.in_(_runs(connection_id, cutoff)),
        Chunk.status.in_([s.value for s in FINAL_CHUNK_STATES]),
    )
    return Target(query, _deleting(Chunk))


def _change_events(connection_id: int, cutoff: dt.datetime) -> Target:
    query = select(ChangeEvent.id).where(
        ChangeEvent.connection_id == connection_id,
        ChangeEvent.created_at < cutoff,
        ChangeEvent.outcome.not_in(_OPEN_EVENTS),
    )
    return Target(query, _deleting(ChangeEvent))


def _review_values(connection_id: int, cutoff: dt.datetime) -> Target:
    query = select(ChangeEvent.id).where(
        ChangeEvent.connection_id == connection_id,
        ChangeEvent.created_at < cutoff,
        ChangeEvent.outcome == ChangeOutcome.REVIEW.value,
    )
    return Target(query, _expire_reviews)


def _alert_deliveries(connection_id: int, cutoff: dt.datetime) -> Target:
    query = select(AlertDelivery.id).where(
        AlertDelivery.connection_id == connection_id, AlertDelivery.at < cutoff
    )
    return Target(query, _deleting(AlertDelivery))


def _run_summaries(connection_id: int, cutoff: dt.datetime) -> Target:
    return Target(_runs(connection_id, cutoff), _deleting(Run))


AGED: dict[PurgeKind, Callable[[int, dt.datetime], Target]] = {
    PurgeKind.SAMPLES: _samples,
    PurgeKind.FAILURES: _failures,
    PurgeKind.CHUNKS: _chunks,
    PurgeKind.CHANGE_EVENTS: _change_events,
    PurgeKind.REVIEW_VALUES: _review_values,
    PurgeKind.ALERT_DELIVERIES: _alert_deliveries,
    PurgeKind.RUNS: _run_summaries,
}


def census_since(session: Session, connection_id: int) -> dt.datetime | None:
    """When the last successful full run started: every record the CRM held then was indexed since (None: no
    such run, so the key index cannot tell who left)."""
    started: dt.datetime | None = session.scalar(
        select(func.max(Run.started_at)).where(
            Run.connection_id == connection_id,
            Run.mode == RunMode.FULL.value,
            Run.status == RunStatus.SUCCEEDED.value,
        )
    )
    return started


def left_crm(connection_id: int, since: dt.datetime) -> Target:
    """``record_writes`` of records that left the CRM: the key index has not seen them since the last census."""
    present = select(KeyIndexEntry.record_id).where(
        KeyIndexEntry.connection_id == connection_id, KeyIndexEntry.updated_at >= since
    )
    query = select(RecordWrite.id).where(
        RecordWrite.connection_id == connection_id, RecordWrite.record_id.not_in(present)
    )
    return Target(query, _deleting(RecordWrite))


def stale_keys(connection_id: int, since: dt.datetime) -> Target:
    """Key-index entries of records that left the CRM (not seen by the last census)."""
    query = select(KeyIndexEntry.record_id).where(
        KeyIndexEntry.connection_id == connection_id, KeyIndexEntry.updated_at < since
    )

    def apply(session: Session, ids: Sequence[Any]) -> None:
        session.execute(
            delete(KeyIndexEntry).where(
                KeyIndexEntry.connection_id == connection_id, KeyIndexEntry.record_id.in_(ids)
            )
        )

    return Target(query, apply)
