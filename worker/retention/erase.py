"""Erasure on demand: forget one company (org number) or one CRM record everywhere the ledger stores it.

``forget`` deletes failures, change events (with review values), key-index entries and write hashes, and
removes the number or Id from free-form columns (``scrub``). The audit event names the erasure by a keyed hash,
never the number. A register's ``Fjernet``/``REMOVED`` change calls :func:`erase_removed` from the changes
planner, scoped to its connection.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.orm import Session

from config.settings import get_settings
from worker.changes.models import ChangeEvent, ChangeOutcome, KeyIndexEntry
from worker.company import CompanyKey
from worker.ledger.audit import append_event
from worker.ledger.models import RecordFailure, RecordWrite, Run
from worker.retention.scrub import scrub

ERASE_ACTION = "retention.erase"


@dataclass(slots=True)
class Erasure:
    """What one erasure removed, per kind (counts only)."""

    subject: str  # the keyed hash of what was erased
    counts: dict[str, int] = field(default_factory=dict)


def subject_hash(subject: str) -> str:
    """HMAC-SHA256 of ``subject`` under the primary secret key (plain sha256 without one): an org number has
    too few digits for a plain hash to hide it."""
    keys = get_settings().secret_keys()
    if not keys:
        return hashlib.sha256(subject.encode("utf-8")).hexdigest()
    return hmac.new(keys[0].encode("ascii"), subject.encode("utf-8"), hashlib.sha256).hexdigest()


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _records_of(session: Session, key: CompanyKey) -> set[str]:
    """The CRM records the ledger associates with ``key``."""
    indexed = select(KeyIndexEntry.record_id).where(
        KeyIndexEntry.country == key.country, KeyIndexEntry.org_number == key.org_number
    )
    evented = select(ChangeEvent.record_id).where(
        ChangeEvent.country == key.country, ChangeEvent.org_number == key.org_number
    )
    failed = select(RecordFailure.record_id).where(RecordFailure.org_number == key.org_number)
    found = set(session.scalars(indexed)) | set(session.scalars(evented)) | set(session.scalars(failed))
    return {str(r) for r in found if r}


def _delete_rows(session: Session, numbers: set[str], record_ids: set[str]) -> dict[str, int]:
    """Delete the rows of every table keyed by one of these org numbers or record Ids."""
    ids = list(record_ids)
    failure: list[ColumnElement[bool]] = [
        RecordFailure.record_id.in_(ids),
        RecordFailure.org_number.in_(list(numbers)),
    ]
    failure += [RecordFailure.message.contains(n, autoescape=True) for n in _needles(numbers, record_ids)]
    event = [ChangeEvent.record_id.in_(ids), ChangeEvent.org_number.in_(list(numbers))]
    key = [KeyIndexEntry.record_id.in_(ids), KeyIndexEntry.org_number.in_(list(numbers))]
    return {
        "failures": _rowcount(session.execute(delete(RecordFailure).where(or_(*failure)))),
        "change_events": _rowcount(session.execute(delete(ChangeEvent).where(or_(*event)))),
        "key_index": _rowcount(session.execute(delete(KeyIndexEntry).where(or_(*key)))),
        "write_hashes": _rowcount(session.execute(delete(RecordWrite).where(RecordWrite.record_id.in_(ids)))),
    }


def _erase(session: Session, subject: str, numbers: set[str], record_ids: set[str], actor: str) -> Erasure:
    erasure = Erasure(subject_hash(subject))
    erasure.counts = _delete_rows(session, numbers, record_ids)
    erasure.counts["rewritten"] = scrub(session, _needles(numbers, record_ids))
    append_event(
        session, actor=actor, action=ERASE_ACTION, target=f"erasure:{erasure.subject}", after=erasure.counts
    )
    return erasure


def _needles(numbers: Iterable[str], record_ids: Iterable[str]) -> set[str]:
    return {*numbers, *record_ids}


def forget_company(session: Session, key: CompanyKey, actor: str) -> Erasure:
    """Erase every trace of one company, and of the CRM records the ledger associates with it (audited)."""
    records = _records_of(session, key)
    return _erase(session, f"{key.country}/{key.org_number}", {key.org_number}, records, actor)


def forget_record(session: Session, record_id: str, actor: str) -> Erasure:
    """Erase every trace of one CRM record (audited)."""
    return _erase(session, f"record/{record_id}", set(), {record_id}, actor)


def erase_removed(session: Session, connection_id: int, keys: set[CompanyKey]) -> None:
    """A company removed from the register: in its connection, delete its change events (review values too)
    except the ``planned`` ones a changes run's chunk still settles, and its failures.

    The key index and write hashes stay: the CRM record still holds the number, and this run is about to write
    its status. One audit event per call, keyed by hashes.
    """
    if not keys:
        return
    numbers = {k.org_number for k in keys}
    events = delete(ChangeEvent).where(
        ChangeEvent.connection_id == connection_id,
        or_(*(ChangeEvent.org_number == k.org_number for k in keys)),
        ChangeEvent.outcome != ChangeOutcome.PLANNED.value,
    )
    runs = select(Run.id).where(Run.connection_id == connection_id)
    failures = delete(RecordFailure).where(
        RecordFailure.run_id.in_(runs),
        or_(
            RecordFailure.org_number.in_(list(numbers)),
            *(RecordFailure.message.contains(n, autoescape=True) for n in numbers),
        ),
    )
    counts = {
        "change_events": _rowcount(session.execute(events)),
        "failures": _rowcount(session.execute(failures)),
        "companies": len(keys),
    }
    subjects = sorted(subject_hash(f"{k.country}/{k.org_number}") for k in keys)
    append_event(
        session,
        actor="register",
        action=ERASE_ACTION,
        target=f"connection:{connection_id}",
        after={**counts, "subjects": subjects},
    )
