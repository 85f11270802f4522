"""Recording change events: what a change did to one field of one record, and the changes that wait in review.

A full run records only its review changes (source ``run:full``); a changes run records every outcome with its
feed's source and item id. Values are stored only on events waiting in review (shown to the admin, never
logged) and cleared once decided (``worker.changes.review``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.changes.models import ChangeEvent, ChangeOutcome, ChangeType
from worker.company import CompanyKey
from worker.crm.values import CrmValue, normalise
from worker.ledger.models import utcnow

#: The source of the review events of a full (or backfill) run; their item id is the run id.
FULL_RUN_SOURCE = "run:full"
#: Why a waiting change left the queue without a decision: a newer change to the same field replaced it.
REPLACED = "replaced by a newer change to the same field (event {event_id})"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a change came from: a feed item (``feed:brreg:NO``, its oppdateringsid) or a full run."""

    source: str
    item_id: str
    change_type: ChangeType
    run_id: int | None

    @classmethod
    def full_run(cls, run_id: int) -> Origin:
        return cls(FULL_RUN_SOURCE, str(run_id), ChangeType.CHANGED, run_id)


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One field change of one record that waits for a person instead of being written."""

    origin: Origin
    record_id: str
    key: CompanyKey
    field: str  # canonical
    old: CrmValue
    new: CrmValue


@dataclass(frozen=True, slots=True)
class OutcomeItem:
    """What a change did to one field of one record (no record, no field: nothing in this CRM it touched)."""

    origin: Origin
    key: CompanyKey
    outcome: ChangeOutcome
    record_id: str | None = None
    field: str | None = None
    reason: str | None = None


def record_outcomes(session: Session, connection_id: int, items: Sequence[OutcomeItem]) -> None:
    """Add one event per item, without values (use :func:`record_review` for the outcome ``review``)."""
    if any(item.outcome is ChangeOutcome.REVIEW for item in items):
        raise ValueError("a review change carries its values: record it with record_review")
    session.add_all(
        _event(
            connection_id,
            item.origin,
            item.key,
            record_id=item.record_id,
            field=item.field,
            outcome=item.outcome,
            reason=item.reason,
        )
        for item in items
    )


def record_review(session: Session, connection_id: int, items: Sequence[ReviewItem]) -> int:
    """Queue these changes for review, in the caller's transaction; returns how many events it added.

    A change already waiting for the same record and field with the same new value is not added again (a re-run
    or a retried chunk sees it again); one with a different new value replaces the waiting one, which leaves
    the queue as ``skipped`` with the new event's id as its reason.
    """
    waiting = _waiting(session, connection_id, {item.record_id for item in items})
    added = 0
    for item in items:
        current = waiting.get((item.record_id, item.field))
        if current is not None and normalise(current.new_value) == normalise(item.new):
            continue
        event = _review_event(connection_id, item)
        session.add(event)
        session.flush()
        if current is not None:
            _replace(current, event.id)
        waiting[(item.record_id, item.field)] = event
        added += 1
    return added


def _waiting(
    session: Session, connection_id: int, record_ids: set[str]
) -> dict[tuple[str, str], ChangeEvent]:
    """The events waiting in review for these records, by (record Id, canonical field): one query."""
    if not record_ids:
        return {}
    rows = session.scalars(
        select(ChangeEvent).where(
            ChangeEvent.connection_id == connection_id,
            ChangeEvent.outcome == ChangeOutcome.REVIEW.value,
            ChangeEvent.record_id.in_(sorted(record_ids)),
        )
    )
    return {(row.record_id or "", row.field or ""): row for row in rows}


def _review_event(connection_id: int, item: ReviewItem) -> ChangeEvent:
    event = _event(
        connection_id,
        item.origin,
        item.key,
        record_id=item.record_id,
        field=item.field,
        outcome=ChangeOutcome.REVIEW,
        reason=None,
    )
    event.old_value, event.new_value = item.old, item.new
    return event


def _replace(event: ChangeEvent, newer_id: int) -> None:
    event.outcome = ChangeOutcome.SKIPPED.value
    event.reason = REPLACED.format(event_id=newer_id)
    event.old_value = event.new_value = None
    event.decided_at = utcnow()


def _event(
    connection_id: int,
    origin: Origin,
    key: CompanyKey,
    *,
    record_id: str | None,
    field: str | None,
    outcome: ChangeOutcome,
    reason: str | None,
) -> ChangeEvent:
    return ChangeEvent(
        connection_id=connection_id,
        run_id=origin.run_id,
        source=origin.source,
        item_id=origin.item_id,
        change_type=origin.change_type.value,
        country=key.country,
        org_number=key.org_number,
        record_id=record_id,
        field=field,
        outcome=outcome.value,
        reason=reason,
    )
