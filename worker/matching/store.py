"""Reading and writing ``name_matches`` rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.ledger.models import utcnow
from worker.ledger.upsert import upsert
from worker.matching.models import MatchStatus, NameMatch

_UPDATED = (
    "run_id", "country", "name_hash", "status", "reason", "crm_name", "candidates", "org_number",
    "decided_by", "decided_at", "updated_at",
)  # fmt: skip


def known_hashes(
    session: Session, connection_id: int, sobject: str, record_ids: Sequence[str]
) -> dict[str, str]:
    """Record Id → the name hash last searched for it (a row exists), for ``record_ids``."""
    if not record_ids:
        return {}
    rows = session.execute(
        select(NameMatch.record_id, NameMatch.name_hash).where(
            NameMatch.connection_id == connection_id,
            NameMatch.object == sobject,
            NameMatch.record_id.in_(list(record_ids)),
        )
    ).all()
    return {record_id: digest for record_id, digest in rows}


def save(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or replace the rows of ``(connection_id, object, record_id)``: a new search replaces the old one."""
    now = utcnow()
    full = [
        {"decided_by": None, "decided_at": None, "created_at": now, "updated_at": now, **row} for row in rows
    ]
    upsert(session, NameMatch.__table__, full, ("connection_id", "object", "record_id"), _UPDATED)


def waiting(session: Session, connection_id: int, limit: int = 100) -> list[NameMatch]:
    """Rows waiting in review, oldest first."""
    query = (
        select(NameMatch)
        .where(NameMatch.connection_id == connection_id, NameMatch.status == MatchStatus.REVIEW.value)
        .order_by(NameMatch.id)
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def page(
    session: Session,
    connection_id: int,
    *,
    status: MatchStatus | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> tuple[list[NameMatch], bool]:
    """Newest first; up to ``limit`` rows (after the row ``after_id`` of the last page) and whether more follow."""
    query = select(NameMatch).where(NameMatch.connection_id == connection_id)
    if status is not None:
        query = query.where(NameMatch.status == status.value)
    if after_id is not None:
        query = query.where(NameMatch.id < after_id)
    rows = list(session.scalars(query.order_by(NameMatch.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit
