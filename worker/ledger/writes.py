"""Per-field write tracking (hashes only): pending before a PATCH, confirmed after it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.crm.values import CrmValue, value_hash
from worker.ledger.models import RecordWrite
from worker.ledger.upsert import upsert


@dataclass(frozen=True, slots=True)
class FieldState:
    confirmed_hash: str | None
    pending_hash: str | None
    pending_run_id: int | None


def load(
    session: Session, connection_id: int, record_ids: Collection[str]
) -> dict[str, dict[str, FieldState]]:
    """Write state of the given records: record Id → field → state."""
    if not record_ids:
        return {}
    rows = session.execute(
        select(RecordWrite).where(
            RecordWrite.connection_id == connection_id, RecordWrite.record_id.in_(list(record_ids))
        )
    ).scalars()
    state: dict[str, dict[str, FieldState]] = {}
    for row in rows:
        state.setdefault(row.record_id, {})[row.field] = FieldState(
            row.value_hash, row.pending_hash, row.pending_run_id
        )
    return state


def mark_pending(
    session: Session, connection_id: int, run_id: int, changes: Mapping[str, Mapping[str, CrmValue]]
) -> None:
    """Before the PATCH: remember, per field, the hash of what this run is about to write."""
    rows = [
        {
            "connection_id": connection_id,
            "record_id": record_id,
            "field": field,
            "pending_hash": value_hash(value),
            "pending_run_id": run_id,
        }
        for record_id, fields in changes.items()
        for field, value in fields.items()
    ]
    keys = ("connection_id", "record_id", "field")
    upsert(session, RecordWrite.__table__, rows, keys, ("pending_hash", "pending_run_id"))


def confirm(
    session: Session, connection_id: int, run_id: int, record_ids: Collection[str], now: dt.datetime
) -> None:
    """After a successful write: the pending hashes of this run become the confirmed ones."""
    if record_ids:
        session.execute(
            _pending(connection_id, run_id, record_ids).values(
                value_hash=RecordWrite.pending_hash,
                run_id=run_id,
                pending_hash=None,
                pending_run_id=None,
                written_at=now,
            )
        )


def clear(session: Session, connection_id: int, run_id: int, record_ids: Collection[str]) -> None:
    """After a failed write: forget this run's pending hashes."""
    if record_ids:
        session.execute(
            _pending(connection_id, run_id, record_ids).values(pending_hash=None, pending_run_id=None)
        )


def _pending(connection_id: int, run_id: int, record_ids: Collection[str]):  # type: ignore[no-untyped-def]
    return update(RecordWrite).where(
        RecordWrite.connection_id == connection_id,
        RecordWrite.pending_run_id == run_id,
        RecordWrite.record_id.in_(list(record_ids)),
    )
