"""The hash-chained audit log of admin actions: append an event, verify the chain.

Each event's hash covers its content and the previous event's hash, so editing, deleting or reordering
rows breaks the chain at a point ``verify_chain`` can name. Deleting the newest events cannot be detected
from the table alone; compare ``VerifyResult.head_hash`` with a copy kept elsewhere for that.
Values in ``before``/``after`` are never secrets: callers pass masked values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.ledger.db import hold_lock
from worker.ledger.models import AuditEvent, utcnow
from worker.ledger.origin import current_origin

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of :func:`verify_chain`."""

    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str | None = None
    head_hash: str | None = None


def canonical_json(data: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _jsonable(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """``data`` as it will come back from the JSON column, so the hash covers exactly what is stored."""
    return None if data is None else dict(json.loads(canonical_json(data)))


def event_hash(
    *,
    prev_hash: str,
    at: dt.datetime,
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    context: dict[str, Any] | None = None,
) -> str:
    """The sha256 hex digest that chains one event to the one before it.

    ``context`` (where the action came from) is hashed only when present, so events written before it existed
    still verify.
    """
    content = {
        "prev_hash": prev_hash,
        "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "target": target,
        "before": before,
        "after": after,
    }
    if context is not None:
        content["context"] = context
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def _hash_of(event: AuditEvent) -> str:
    return event_hash(
        prev_hash=event.prev_hash,
        at=event.at,
        actor=event.actor,
        action=event.action,
        target=event.target,
        before=event.before,
        after=event.after,
        context=event.context,
    )


def _serialise_appenders(session: Session) -> None:
    """Hold the audit append lock until this transaction ends, so two appenders never share a prev_hash."""
    hold_lock(session, "regsync.audit_events", sqlite_claim="UPDATE audit_events SET id = id WHERE id = -1")


def append_event(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the audit chain inside the caller's transaction.

    Args:
        session: The session whose transaction also makes the change being audited.
        actor: Who made the change.
        action: What was done, e.g. ``connection.update`` or ``secret.set``.
        target: What it was done to, e.g. ``connection:acme``.
        before: The relevant values before the change (masked, never secrets).
        after: The relevant values after the change (masked, never secrets).

    Returns:
        The new, flushed event.
    """
    _serialise_appenders(session)
    last = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    event = AuditEvent(
        at=utcnow(),
        actor=actor,
        action=action,
        target=target,
        before=_jsonable(before),
        after=_jsonable(after),
        context=_jsonable(current_origin()),
    )
    event.prev_hash = last or GENESIS_HASH
    event.hash = _hash_of(event)
    session.add(event)
    session.flush()
    return event


def _problem(event: AuditEvent, previous: AuditEvent | None) -> str | None:
    expected_prev = previous.hash if previous is not None else GENESIS_HASH
    if _hash_of(event) != event.hash:
        return f"event {event.id} was modified after it was written (its hash does not match its content)"
    if event.prev_hash != expected_prev:
        after = f"event {previous.id}" if previous is not None else "the start of the log"
        return f"event {event.id} does not follow {after}: an event between them was deleted or reordered"
    return None


def verify_chain(session: Session) -> VerifyResult:
    """Walk the audit log in id order and report the first event that breaks the chain.

    Args:
        session: A session on the ledger.

    Returns:
        ``ok`` with the number of events checked and the newest hash, or the first broken event and why.
    """
    statement = select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=500)
    # Closed explicitly: stopping at a break leaves PostgreSQL's server-side cursor open otherwise.
    with closing(session.scalars(statement)) as events:
        return _walk(events)


def _walk(events: Iterable[AuditEvent]) -> VerifyResult:
    previous: AuditEvent | None = None
    checked = 0
    for event in events:
        reason = _problem(event, previous)
        if reason is not None:
            return VerifyResult(ok=False, checked=checked, broken_id=event.id, reason=reason)
        previous = event
        checked += 1
    return VerifyResult(ok=True, checked=checked, head_hash=previous.hash if previous else None)
