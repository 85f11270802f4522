"""The chunk's side of a changes run: the feed origin of each planned record, and the final outcome of each
``planned`` change event (worker.changes.plan stores them with the chunk).

A chunk reads its records' ``planned`` events once (:func:`origins`: one query; a full run's chunk finds none),
sends review changes with the feed item's origin, and in the transaction that finishes the chunk turns each
``planned`` event into ``synced`` (written or already right), ``failed`` (the record failed: its failure row
says why) or ``skipped`` (opted out, out of scope); a field sent to review is recorded by
``events.record_review`` with its values, so its ``planned`` event is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from worker.changes.events import Origin
from worker.changes.models import ChangeEvent, ChangeOutcome, ChangeType

#: Per record Id, per canonical field: the feed item that planned it.
Origins = dict[str, dict[str, Origin]]


@dataclass(slots=True)
class Settled:
    """What a chunk did to its records, as the planned events need it."""

    failed: Mapping[str, str] = field(default_factory=dict)  # record Id -> error code
    skipped: Mapping[str, str] = field(default_factory=dict)  # record Id -> reason
    reviewed: set[tuple[str, str]] = field(default_factory=set)  # (record Id, canonical field)


def origins(session: Session, run_id: int, record_ids: Sequence[str]) -> Origins:
    """The feed origins of these records' ``planned`` events in ``run_id`` (empty for a full run's chunk)."""
    rows = session.execute(
        select(
            ChangeEvent.record_id,
            ChangeEvent.field,
            ChangeEvent.source,
            ChangeEvent.item_id,
            ChangeEvent.change_type,
        ).where(
            ChangeEvent.run_id == run_id,
            ChangeEvent.outcome == ChangeOutcome.PLANNED.value,
            ChangeEvent.record_id.in_(list(record_ids)),
        )
    )
    found: Origins = {}
    for record_id, name, source, item_id, change_type in rows:
        origin = Origin(source, item_id, ChangeType(change_type), run_id)
        found.setdefault(str(record_id), {})[str(name)] = origin
    return found


def settle(session: Session, run_id: int, record_ids: Sequence[str], settled: Settled) -> None:
    """Give the ``planned`` events of these records their final outcome, in the chunk's finishing transaction."""
    rows = session.execute(
        select(ChangeEvent.id, ChangeEvent.record_id, ChangeEvent.field).where(
            ChangeEvent.run_id == run_id,
            ChangeEvent.outcome == ChangeOutcome.PLANNED.value,
            ChangeEvent.record_id.in_(list(record_ids)),
        )
    )
    by_outcome: dict[tuple[ChangeOutcome, str | None], list[int]] = {}
    dropped: list[int] = []
    for event_id, record_id, name in rows:
        rid = str(record_id)
        if (rid, name) in settled.reviewed:
            dropped.append(event_id)
        elif rid in settled.failed:
            by_outcome.setdefault((ChangeOutcome.FAILED, settled.failed[rid]), []).append(event_id)
        elif rid in settled.skipped:
            by_outcome.setdefault((ChangeOutcome.SKIPPED, settled.skipped[rid]), []).append(event_id)
        else:
            by_outcome.setdefault((ChangeOutcome.SYNCED, None), []).append(event_id)
    for (outcome, reason), ids in by_outcome.items():
        session.execute(
            update(ChangeEvent).where(ChangeEvent.id.in_(ids)).values(outcome=outcome.value, reason=reason)
        )
    if dropped:
        session.execute(delete(ChangeEvent).where(ChangeEvent.id.in_(dropped)))
