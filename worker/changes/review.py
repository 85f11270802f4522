"""The review queue: list change events, approve or reject the ones waiting in review (audited).

Approve writes a change only while the CRM still holds the value the event saw; otherwise the event goes back to
review with the current value as its old one. A decision holds its events for ``CLAIM_FOR`` (compare-and-set),
so two admins, or an approve and a reject, never decide the same event twice. Values are cleared once decided;
neither the audit trail nor a log line ever carries one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from config.settings import get_settings
from worker.changes.models import ChangeEvent, ChangeOutcome
from worker.connections.spec import ConnectionSpec
from worker.crm.port import CrmClient, CrmRecord
from worker.crm.values import CrmValue, normalise, value_hash
from worker.errors import ChangeNotFound, StateConflict
from worker.ledger.audit import append_event
from worker.ledger.db import session_scope
from worker.ledger.models import RecordWrite, utcnow
from worker.ledger.upsert import upsert

log = logging.getLogger(__name__)

#: How long a decision in progress holds its events (a crashed approve releases them after this).
CLAIM_FOR = dt.timedelta(minutes=10)
#: Records per Salesforce read and write (the collection APIs' limit).
BATCH = 200
MOVED = "the CRM value changed since; check the new old value and approve again"
GONE = "the record no longer exists in Salesforce"
ALREADY = "the CRM already holds the new value"
UNMAPPED = "the field is no longer mapped; map it again or reject the change"
WRITE_FAILED = "the write failed ({code}); approve again or reject"


@dataclass(frozen=True, slots=True)
class Decision:
    """What a decision did to one event."""

    event_id: int
    outcome: ChangeOutcome  # approved, rejected, failed, or review (sent back, with a reason)
    reason: str | None = None


@dataclass(slots=True)
class _Applied:
    """What approving did: a decision per event, the events written, and the CRM's current value of each event
    sent back because that value moved (it becomes the event's old value)."""

    decisions: dict[int, Decision] = field(default_factory=dict)
    written: list[_Waiting] = field(default_factory=list)
    moved: dict[int, CrmValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Waiting:
    """A claimed event, detached from its session."""

    id: int
    run_id: int | None
    record_id: str
    field: str
    old: CrmValue
    new: CrmValue


def list_events(
    session: Session,
    connection_id: int,
    *,
    status: ChangeOutcome | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> tuple[list[ChangeEvent], bool]:
    """Newest first; up to ``limit`` events and whether more follow."""
    query = select(ChangeEvent).where(ChangeEvent.connection_id == connection_id)
    if status is not None:
        query = query.where(ChangeEvent.outcome == status.value)
    if after_id is not None:
        query = query.where(ChangeEvent.id < after_id)
    rows = list(session.scalars(query.order_by(ChangeEvent.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def connections_of(session: Session, ids: Collection[int]) -> dict[int, list[int]]:
    """Connection id → the given event ids it holds (the CLI decides across connections).

    Raises:
        ChangeNotFound: an id names no event.
    """
    rows = session.execute(select(ChangeEvent.id, ChangeEvent.connection_id).where(ChangeEvent.id.in_(ids)))
    found = {event_id: connection_id for event_id, connection_id in rows}
    _require_found(ids, found)
    grouped: dict[int, list[int]] = {}
    for event_id in sorted(ids):
        grouped.setdefault(found[event_id], []).append(event_id)
    return grouped


def require_own(session: Session, connection_id: int, ids: Collection[int]) -> None:
    """Raises ChangeNotFound unless every id is an event of this connection (checked before any CRM call)."""
    found = session.scalars(
        select(ChangeEvent.id).where(ChangeEvent.connection_id == connection_id, ChangeEvent.id.in_(ids))
    ).all()
    _require_found(ids, found)


def reject(session: Session, connection: tuple[int, str], ids: Collection[int], actor: str) -> list[Decision]:
    """Reject changes waiting in review: the CRM is left alone; audited in the caller's transaction.

    Args:
        connection: the connection's id and name; ``ids`` must all be its events.
        ids: event ids; one already rejected stays so (a repeated request is harmless).

    Raises:
        ChangeNotFound: an id is not an event of this connection.
        StateConflict: an event was decided otherwise, or another decision holds it now.
    """
    waiting, done = _claim(session, connection[0], ids, actor, ChangeOutcome.REJECTED)
    decisions = done + [Decision(item.id, ChangeOutcome.REJECTED) for item in waiting]
    _settle(session, actor, decisions)
    _audit(session, connection[1], actor, "change.reject", decisions)
    return decisions


def approve(
    spec: ConnectionSpec, connection_id: int, ids: Collection[int], actor: str, crm: CrmClient
) -> list[Decision]:
    """Approve changes waiting in review: each is written if the CRM still holds the value the event saw.

    Args:
        spec: the connection's spec (which CRM field each canonical field maps to).
        ids: event ids of this connection; one already approved stays so.
        crm: the connection's CRM client: reads the records, writes the approved values.

    Raises:
        ChangeNotFound: an id is not an event of this connection.
        StateConflict: an event was decided otherwise, or another decision holds it now.
    """
    with session_scope() as session:
        waiting, done = _claim(session, connection_id, ids, actor, ChangeOutcome.APPROVED)
    try:
        applied = _apply(spec, waiting, crm)
    except BaseException:
        _release(connection_id, [item.id for item in waiting], actor)
        raise
    decisions = [applied.decisions[item.id] for item in waiting]
    with session_scope() as session:
        _settle(session, actor, decisions, applied.moved)
        _confirm_hashes(session, connection_id, spec, applied.written)
        _audit(session, spec.name, actor, "change.approve", done + decisions)
    return done + decisions


@contextmanager
def connection_crm(connection_id: int) -> Iterator[tuple[ConnectionSpec, CrmClient]]:
    """A connection's spec and Salesforce client for one decision; its calls count against the daily budget."""
    from worker.budget.control import record_usage
    from worker.crm.salesforce import SalesforceClient
    from worker.sync.runtime import load_runtime

    settings = get_settings()
    runtime = load_runtime(connection_id)
    with SalesforceClient(runtime.spec, runtime.crm_secret, timeout_s=settings.crm_timeout_s) as crm:
        try:
            yield runtime.spec, crm
        finally:
            record_usage(connection_id, crm, settings)


def _require_found(ids: Collection[int], found: Collection[int]) -> None:
    missing = sorted(set(ids) - set(found))
    if missing:
        raise ChangeNotFound(
            f"no change event {', '.join(map(str, missing))} in this connection; "
            "list them with `regsync changes list CONNECTION`"
        )


def _claim(
    session: Session, connection_id: int, ids: Collection[int], actor: str, decision: ChangeOutcome
) -> tuple[list[_Waiting], list[Decision]]:
    """Hold the events waiting in review for this decision (compare-and-set); events already decided the same
    way come back as done."""
    events = {
        event.id: event
        for event in session.scalars(
            select(ChangeEvent).where(ChangeEvent.connection_id == connection_id, ChangeEvent.id.in_(ids))
        )
    }
    _require_found(ids, events)
    done = [Decision(i, decision, "already decided") for i in sorted(ids) if events[i].outcome == decision]
    todo = sorted(i for i in ids if events[i].outcome != decision)
    for event_id in todo:
        if events[event_id].outcome != ChangeOutcome.REVIEW:
            raise StateConflict(
                f"change event {event_id} was already decided ({events[event_id].outcome}); only a change "
                "waiting in review can be approved or rejected"
            )
    _hold(session, connection_id, todo, actor)
    return [_detached(events[i]) for i in todo], done


def _hold(session: Session, connection_id: int, ids: list[int], actor: str) -> None:
    if not ids:
        return
    now = utcnow()
    held = session.execute(
        update(ChangeEvent)
        .where(
            ChangeEvent.connection_id == connection_id,
            ChangeEvent.id.in_(ids),
            ChangeEvent.outcome == ChangeOutcome.REVIEW.value,
            or_(ChangeEvent.decided_at.is_(None), ChangeEvent.decided_at < now - CLAIM_FOR),
        )
        .values(decided_by=actor, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    if held.rowcount != len(ids):  # type: ignore[attr-defined]
        raise StateConflict(
            "another decision holds some of these change events right now; list them again and retry"
        )


def _detached(event: ChangeEvent) -> _Waiting:
    return _Waiting(
        event.id, event.run_id, event.record_id or "", event.field or "", event.old_value, event.new_value
    )


def _release(connection_id: int, ids: list[int], actor: str) -> None:
    """Give held events back to the queue after a decision failed half-way (nothing was settled)."""
    if not ids:
        return
    with session_scope() as session:
        session.execute(
            update(ChangeEvent)
            .where(
                ChangeEvent.id.in_(ids),
                ChangeEvent.connection_id == connection_id,
                ChangeEvent.decided_by == actor,
            )
            .values(decided_by=None, decided_at=None)
            .execution_options(synchronize_session=False)
        )


def _apply(spec: ConnectionSpec, waiting: Sequence[_Waiting], crm: CrmClient) -> _Applied:
    """Re-read the records and write what still applies."""
    applied = _Applied()
    targets = {item.id: spec.mapping[item.field].field for item in waiting if item.field in spec.mapping}
    mapped = [item for item in waiting if item.id in targets]
    applied.decisions = {
        item.id: Decision(item.id, ChangeOutcome.REVIEW, UNMAPPED)
        for item in waiting
        if item.id not in targets
    }
    current = _read(crm, mapped, targets)
    to_write: list[_Waiting] = []
    for item in mapped:
        record = current.get(item.record_id)
        verdict = _verdict(item, record, targets[item.id])
        if verdict is None:
            to_write.append(item)
            continue
        applied.decisions[item.id] = verdict
        if verdict.reason == MOVED and record is not None:
            applied.moved[item.id] = record.get(targets[item.id])
    applied.decisions.update(_write(crm, to_write, targets))
    applied.written = [
        item for item in mapped if applied.decisions[item.id].outcome is ChangeOutcome.APPROVED
    ]
    return applied


def _read(crm: CrmClient, waiting: Sequence[_Waiting], targets: dict[int, str]) -> dict[str, CrmRecord]:
    ids = sorted({item.record_id for item in waiting})
    fields = ["Id", *sorted({targets[item.id] for item in waiting})]
    found: dict[str, CrmRecord] = {}
    for start in range(0, len(ids), BATCH):
        found.update((r["Id"], r) for r in crm.read_by_ids(ids[start : start + BATCH], fields))
    return found


def _verdict(item: _Waiting, record: CrmRecord | None, target: str) -> Decision | None:
    """None when the change is to be written; else what happens to the event without a write."""
    if record is None:
        return Decision(item.id, ChangeOutcome.FAILED, GONE)
    now = normalise(record.get(target))
    if now == normalise(item.new):
        return Decision(item.id, ChangeOutcome.APPROVED, ALREADY)
    if now != normalise(item.old):
        return Decision(item.id, ChangeOutcome.REVIEW, MOVED)
    return None


def _write(crm: CrmClient, items: Sequence[_Waiting], targets: dict[int, str]) -> dict[int, Decision]:
    """PATCH the approved values (one record per row, only the approved fields)."""
    by_record: dict[str, dict[str, Any]] = {}
    for item in items:
        by_record.setdefault(item.record_id, {"Id": item.record_id})[targets[item.id]] = item.new
    payload = list(by_record.values())
    failed: dict[str, str] = {}
    for start in range(0, len(payload), BATCH):
        for result in crm.update(payload[start : start + BATCH]):
            if not result.success:
                failed[result.record_id] = result.error_code or "CRM_WRITE_FAILED"
    return {
        item.id: Decision(item.id, ChangeOutcome.REVIEW, WRITE_FAILED.format(code=failed[item.record_id]))
        if item.record_id in failed
        else Decision(item.id, ChangeOutcome.APPROVED)
        for item in items
    }


def _settle(
    session: Session, actor: str, decisions: Sequence[Decision], moved: dict[int, CrmValue] | None = None
) -> None:
    """Store each decision: decided ones lose their values; one sent back to review is free again, with the
    CRM's current value as its old one when that value ``moved``."""
    now = utcnow()
    for decision in decisions:
        event = session.get(ChangeEvent, decision.event_id)
        if event is None or event.outcome != ChangeOutcome.REVIEW:
            continue  # done before, or gone with its connection
        event.reason = decision.reason
        if decision.outcome is ChangeOutcome.REVIEW:
            event.decided_by, event.decided_at = None, None
            if moved and decision.event_id in moved:
                event.old_value = moved[decision.event_id]
            continue
        event.outcome = decision.outcome.value
        event.decided_by, event.decided_at = actor, now
        event.old_value = event.new_value = None


def _confirm_hashes(
    session: Session, connection_id: int, spec: ConnectionSpec, written: Sequence[_Waiting]
) -> None:
    """The approved values are regsync's now: their hashes keep ``protect_manual`` right."""
    now = utcnow()
    rows = [
        {
            "connection_id": connection_id,
            "record_id": item.record_id,
            "field": spec.mapping[item.field].field,
            "value_hash": value_hash(item.new),
            "run_id": item.run_id,
            "written_at": now,
        }
        for item in written
    ]
    keys = ("connection_id", "record_id", "field")
    upsert(session, RecordWrite.__table__, rows, keys, ("value_hash", "run_id", "written_at"))


def _audit(session: Session, name: str, actor: str, action: str, decisions: Sequence[Decision]) -> None:
    """One audit event per request: the event ids and their outcomes, never a value."""
    outcomes = {str(d.event_id): d.outcome.value for d in decisions}
    append_event(session, actor=actor, action=action, target=f"connection:{name}", after={"events": outcomes})
    tally = Counter(d.outcome.value for d in decisions)
    log.info("%s by %s: %s", action, actor, dict(sorted(tally.items())), extra={"connection": name})


def event_view(event: ChangeEvent) -> dict[str, Any]:
    """One event as the CLI and the API show it to the admin (values included while it waits in review)."""
    return {
        "id": event.id,
        "run_id": event.run_id,
        "source": event.source,
        "item_id": event.item_id,
        "change_type": event.change_type,
        "country": event.country,
        "org_number": event.org_number,
        "record_id": event.record_id,
        "field": event.field,
        "outcome": event.outcome,
        "reason": event.reason,
        "old_value": event.old_value,
        "new_value": event.new_value,
        "decided_by": event.decided_by,
        "decided_at": event.decided_at,
        "created_at": event.created_at,
    }


def events_by_id(session: Session, ids: Collection[int]) -> list[ChangeEvent]:
    """The events with these ids, in id order."""
    return list(session.scalars(select(ChangeEvent).where(ChangeEvent.id.in_(ids)).order_by(ChangeEvent.id)))
