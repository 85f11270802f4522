"""Read models of the ledger for the CLI and API: stable JSON keys, no secrets, no CRM field values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.errors import ConnectionNotFound
from worker.ledger.counters import COUNTERS
from worker.ledger.field_changes import field_changes
from worker.ledger.models import Connection, RecordFailure, Run
from worker.ledger.runs import duration_s, get_run
from worker.registry.outcomes import NOTICE_CODES

#: The counts of a run view: planned and invalid (the planner's), every counter, API usage and chunk progress.
#: A changes run's planner counts (zero for a full run): feed pages, items seen, matched, skipped as unmapped.
CHANGE_COUNTS = ("feed_pages", "changes_seen", "changes_matched", "changes_unmapped")
COUNT_KEYS = (
    "planned",
    "invalid",
    *COUNTERS,
    *CHANGE_COUNTS,
    "api_used_before",
    "api_used_after",
    "api_limit",
    "chunks_total",
    "chunks_done",
)


#: Each planned record ends in exactly one of these: planned = their sum + not_processed. The registry outcome
#: counters (registry_not_found, ...) are not fates: a record noticed "deleted" is also updated or unchanged.
RECORD_FATES = ("invalid", "opted_out", "out_of_scope", "unchanged", "updated", "failed")


def records_done(counts: Run | Mapping[str, Any]) -> int:
    """Records whose fate is known: a Run, or a run view (``runs show --json``)."""
    if isinstance(counts, Run):  # (a Run not yet flushed holds None for its defaults)
        return sum(getattr(counts, fate) or 0 for fate in RECORD_FATES)
    return sum(counts[fate] or 0 for fate in RECORD_FATES)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def run_view(run: Run, connection_name: str) -> dict[str, Any]:
    """One run as the stable JSON shape of `runs list/show --json`."""
    view: dict[str, Any] = {
        "id": run.id,
        "connection": connection_name,
        "kind": run.kind,
        "mode": run.mode,
        "status": run.status,
        "triggered_by": run.triggered_by,
        "scheduled_for": _iso(run.scheduled_for),
        "queued_at": _iso(run.queued_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_s": duration_s(run),
    }
    view.update({key: getattr(run, key) for key in COUNT_KEYS})
    view["not_processed"] = max(0, run.planned - records_done(run))
    view["name_searches"] = run.name_searches or 0  # a dry run: how many it would have made
    view["dry_run"] = bool((run.options or {}).get("dry_run"))  # then "updated" counts would-be updates
    view["options"] = {
        key: len(value) if key == "ids" else value for key, value in (run.options or {}).items()
    }
    view["error_code"] = run.error_code
    view["error"] = run.error
    return view


def list_runs(session: Session, connection: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs first, optionally of one connection."""
    query = select(Run, Connection.name).join(Connection, Connection.id == Run.connection_id)
    if connection is not None:
        connection_id = session.execute(select(Connection.id).where(Connection.name == connection)).scalar()
        if connection_id is None:
            raise ConnectionNotFound(f"no connection named {connection!r}")
        # By id, not name: PostgreSQL then walks ix_runs_connection_queued backwards and stops after `limit`
        # rows instead of sorting all of the connection's runs (bench/ledger.py measures it).
        query = query.where(Run.connection_id == connection_id)
    rows = session.execute(query.order_by(Run.queued_at.desc(), Run.id.desc()).limit(limit)).all()
    return [run_view(run, name) for run, name in rows]


def show_run(session: Session, run_id: int) -> dict[str, Any]:
    run = get_run(session, run_id)
    name = session.execute(select(Connection.name).where(Connection.id == run.connection_id)).scalar_one()
    view = run_view(run, name)
    if view["dry_run"]:
        view["field_changes"] = field_changes(session, run_id)  # counts only: samples hold CRM values
    return view


def failure_view(failure: RecordFailure) -> dict[str, Any]:
    return {
        "record_id": failure.record_id,
        "org_number": failure.org_number,
        "error_code": failure.error_code,
        "notice": failure.error_code in NOTICE_CODES,  # a registry outcome: synced where mapped
        "message": failure.message,
        "attempt": failure.attempt,
        "at": _iso(failure.created_at),
    }


def list_failures(
    session: Session, run_id: int, limit: int = 100, offset: int = 0, codes: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """A run's failure and notice rows, oldest first; ``codes`` keeps only rows with one of those codes."""
    get_run(session, run_id)
    query = select(RecordFailure).where(RecordFailure.run_id == run_id)
    if codes:
        query = query.where(RecordFailure.error_code.in_([code.upper() for code in codes]))
    query = query.order_by(RecordFailure.id).limit(limit).offset(offset)
    return [failure_view(f) for f in session.execute(query).scalars()]
