"""Retention facts for the compliance report: each connection's policy, its last purge and what it removed,
and the erasures done in the period (counts and times only, never what was erased)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.ledger.models import AuditEvent, Connection
from worker.retention.erase import ERASE_ACTION
from worker.retention.policy import RetentionSpec
from worker.retention.purge import PURGE_ACTION


def retention_facts(session: Session, connection: Connection) -> dict[str, Any]:
    """The connection's policy (days per kind) and its newest purge: when, by whom, counts per kind."""
    policy = RetentionSpec.model_validate(connection.spec.get("retention") or {})
    last = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == PURGE_ACTION, AuditEvent.target == f"connection:{connection.name}")
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    purge = None
    if last is not None:
        purge = {
            "at": last.at.isoformat(),
            "actor": last.actor,
            "counts": (last.after or {}).get("counts", {}),
        }
    return {"policy": policy.model_dump(mode="json"), "last_purge": purge}


def erasures_since(session: Session, start: dt.datetime, scope: list[Connection] | None = None) -> int:
    """Erasure events in the period: every one (`forget` and register removals) for the whole installation;
    for a scope of connections only their register removals (a tenant does not learn of others' erasures)."""
    query = select(func.count()).where(AuditEvent.action == ERASE_ACTION, AuditEvent.at >= start)
    if scope is not None:
        query = query.where(AuditEvent.target.in_([f"connection:{c.id}" for c in scope]))
    return int(session.scalar(query) or 0)
