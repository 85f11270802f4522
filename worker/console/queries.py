"""Reads the console needs beyond the API's: a connection's overview, failures grouped by code, and a tenant's
slice of the audit trail. Each is a composition of the ledger reads the CLI and API use, in the key's scope."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import String, cast, func, literal, or_, select
from sqlalchemy.orm import Session

from config.settings import Settings
from worker.alerts.queries import list_alerts
from worker.api.schemas import MAX_PAGE
from worker.api.views import page_of_failures, page_of_runs, run_out
from worker.budget.control import budget_store, connection_tag
from worker.budget.guard import utc_day
from worker.errors import SharedStateUnavailable
from worker.ledger.audit import verify_chain
from worker.ledger.models import AuditEvent, RecordFailure, Run
from worker.registry.outcomes import NOTICE_CODES
from worker.scheduling.store import schedule_view


def connection_overview(
    session: Session, connection_id: int, name: str, settings: Settings
) -> dict[str, Any]:
    """One connection's card: its last run, next scheduled slot, open alerts and API calls used today."""
    runs, _ = page_of_runs(session, connection_id, status=None, kind=None, since=None, after_id=None, limit=1)
    schedules = schedule_view(session, name, upcoming=1)
    slots = [row["next_slot"] for row in (schedules["schedule"], schedules["changes_schedule"]) if row]
    open_alerts = list_alerts(session, open_only=True, connection_ids={connection_id}, limit=MAX_PAGE)
    return {
        "name": name,
        "enabled": schedules["enabled"],
        "last_run": run_out(runs[0], name) if runs else None,
        "next_slot": min((slot for slot in slots if slot), default=None),
        "open_alerts": len(open_alerts),
        "api_used_today": _api_used_today(session, connection_id, settings),
    }


def _api_used_today(session: Session, connection_id: int, settings: Settings) -> int | None:
    """regsync's own Salesforce calls this UTC day, or None when the shared store does not answer."""
    try:
        return budget_store(settings).own_used(connection_tag(session, connection_id), utc_day(time.time()))
    except SharedStateUnavailable:
        return None


def failure_groups(session: Session, run_id: int, per_code: int = 20) -> list[dict[str, Any]]:
    """A run's failure rows by code, most frequent first, each with its first ``per_code`` rows."""
    counts = session.execute(
        select(RecordFailure.error_code, func.count())
        .where(RecordFailure.run_id == run_id)
        .group_by(RecordFailure.error_code)
        .order_by(func.count().desc(), RecordFailure.error_code)
    ).all()
    groups = []
    for code, count in counts:
        items, _ = page_of_failures(session, run_id, after_id=None, limit=per_code, code=code)
        groups.append({"code": code, "count": count, "notice": code in NOTICE_CODES, "items": items})
    return groups


def _targets(connection_id: int, name: str) -> Any:
    """Audit targets of one connection: the connection itself, its alerts and settings, and its runs."""
    runs = select(literal("run:") + cast(Run.id, String)).where(Run.connection_id == connection_id)
    return or_(
        AuditEvent.target == f"connection:{name}",
        AuditEvent.target.like(f"connection:{name}/%"),
        AuditEvent.target.in_(runs),
    )


def audit_page(
    session: Session, connection_id: int, name: str, *, before_id: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """A connection's audit events, newest first; up to ``limit`` and the id to continue before."""
    query = select(AuditEvent).where(_targets(connection_id, name))
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    rows = list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "target": e.target,
         "before": e.before, "after": e.after}
        for e in rows
    ]  # fmt: skip
    return items, (rows[-1].id if more and rows else None)


def chain_status(session: Session) -> dict[str, Any]:
    """Whether the installation's audit chain verifies, and its head; not how many events it holds (that would
    tell one tenant how busy the others are), as the API's report leaves it out."""
    result = verify_chain(session)
    return {"ok": result.ok, "head_hash": result.head_hash}
