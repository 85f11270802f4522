"""Ledger reads of the API, always through the caller's scope: what a key may not see does not exist."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.api.keys import Principal
from worker.api.problems import foreign, not_found
from worker.api.progress import progress
from worker.ledger.field_changes import field_changes
from worker.ledger.models import RecordFailure, Run, RunKind, RunStatus, utcnow
from worker.ledger.views import failure_view, run_view


def run_out(run: Run, connection: str) -> dict[str, Any]:
    """A run as `regsync runs show --json` shows it (an ids filter shown as its length)."""
    return run_view(run, connection)


def scoped_run(session: Session, run_id: int, who: Principal) -> tuple[Run, str]:
    """The run and its connection's name, or 404 if it does not exist or is outside the key's connections."""
    run = session.get(Run, run_id)
    if run is None:
        raise not_found("run")
    if not who.sees(run.connection_id):
        raise foreign("run")
    return run, who.connections[run.connection_id]


def run_detail(session: Session, run: Run, connection: str) -> dict[str, Any]:
    """A run with its progress and ETA, and, for a dry run, the per-field counts (never the sampled values)."""
    changes = field_changes(session, run.id, samples=False) if (run.options or {}).get("dry_run") else None
    return run_out(run, connection) | {"progress": progress(run, utcnow()), "field_changes": changes}


def page_of_runs(
    session: Session,
    connection_id: int,
    *,
    status: RunStatus | None,
    kind: RunKind | None,
    since: dt.datetime | None,
    after_id: int | None,
    limit: int,
) -> tuple[list[Run], bool]:
    """Newest first; returns up to ``limit`` runs and whether more follow."""
    query = select(Run).where(Run.connection_id == connection_id)
    if status is not None:
        query = query.where(Run.status == status.value)
    if kind is not None:
        query = query.where(Run.kind == kind.value)
    if since is not None:
        query = query.where(Run.queued_at >= since)
    if after_id is not None:
        query = query.where(Run.id < after_id)
    rows = list(session.scalars(query.order_by(Run.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def page_of_failures(
    session: Session, run_id: int, *, after_id: int | None, limit: int, code: str | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Oldest first (failures and notices, or only rows with ``code``); up to ``limit`` and the last id when more
    follow."""
    query = select(RecordFailure).where(RecordFailure.run_id == run_id)
    if code is not None:
        query = query.where(RecordFailure.error_code == code)
    if after_id is not None:
        query = query.where(RecordFailure.id > after_id)
    rows = list(session.scalars(query.order_by(RecordFailure.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return [failure_view(f) for f in rows], (rows[-1].id if more and rows else None)
