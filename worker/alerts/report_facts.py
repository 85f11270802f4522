"""Facts per connection for the compliance report: who is told (channels), whether notices were waived at
enable, and the runs an auditor must see (failed, partially failed, stuck, cancelled) with their reason.

A run is *stuck* when it is queued or running past its grace: no progress for the connection's
``stall_minutes``, or running longer than its ``max_runtime_minutes`` (the run_stalled / run_overran limits).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.alerts.config import AlertsSpec
from worker.ledger.models import AuditEvent, Connection, RecordFailure, Run, RunStatus

#: Final states an auditor must see listed, in the order the report names them.
ATTENTION_FINAL = (RunStatus.FAILED.value, RunStatus.PARTIALLY_FAILED.value, RunStatus.CANCELLED.value)
STUCK = "stuck"
_PROGRESSING = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
#: Failure codes named per run in the reason, the most frequent first.
REASON_CODES = 5


def alerts_spec(connection: Connection) -> AlertsSpec:
    """The connection's ``[alerts]`` table as stored (defaults where absent)."""
    return AlertsSpec.model_validate(connection.spec.get("alerts") or {})


def channel_status(spec: AlertsSpec) -> dict[str, Any]:
    """Whether anyone is told: channel names and types only (a webhook URL may carry a token)."""
    channels = [{"name": name, "type": channel.type} for name, channel in sorted(spec.channels.items())]
    return {"status": "configured" if channels else "none", "channels": channels}


def waived_notices(session: Session, name: str) -> dict[str, Any] | None:
    """The newest ``connection.enable`` of ``name`` if it was done with ``--without-notices`` (else None)."""
    event = session.scalar(
        select(AuditEvent)
        .where(AuditEvent.action == "connection.enable", AuditEvent.target == f"connection:{name}")
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    if event is None or (event.after or {}).get("without_notices") is not True:
        return None
    return {"at": event.at.isoformat(), "actor": event.actor, "audit_event": event.id}


def stuck_reason(run: Run, spec: AlertsSpec, now: dt.datetime) -> str | None:
    """Why ``run`` counts as stuck at ``now``, or None when it is not."""
    if run.status not in _PROGRESSING:
        return None
    last = run.heartbeat_at or run.started_at or run.queued_at
    quiet = now - last
    if quiet >= dt.timedelta(minutes=spec.stall_minutes):
        return (
            f"{run.status}, no progress for {_minutes(quiet)} (the limit is {spec.stall_minutes} min); "
            f"last sign of life {last:%Y-%m-%d %H:%M} UTC"
        )
    if run.status == RunStatus.RUNNING.value and run.started_at is not None:
        running = now - run.started_at
        if running > dt.timedelta(minutes=spec.max_runtime_minutes):
            return f"running for {_minutes(running)}, past its {spec.max_runtime_minutes} min maximum"
    return None


def _minutes(span: dt.timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def failure_codes(session: Session, run_ids: list[int]) -> dict[int, list[tuple[str, int]]]:
    """Per run, its record failure codes with their counts, the most frequent first."""
    if not run_ids:
        return {}
    query = (
        select(RecordFailure.run_id, RecordFailure.error_code, func.count())
        .where(RecordFailure.run_id.in_(run_ids))
        .group_by(RecordFailure.run_id, RecordFailure.error_code)
    )
    found: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for run_id, code, count in session.execute(query):
        found[int(run_id)].append((str(code), int(count)))
    return {run_id: sorted(codes, key=lambda c: (-c[1], c[0])) for run_id, codes in found.items()}


def final_reason(run: Run, codes: list[tuple[str, int]]) -> str:
    """The reason of a failed, partially failed or cancelled run: its error, then its record failure codes."""
    parts = []
    if run.error_code or run.error:
        parts.append(": ".join(p for p in (run.error_code, run.error) if p))
    if run.failed or run.invalid:
        parts.append(f"{run.failed} records failed and {run.invalid} were invalid, of {run.planned} planned")
    if codes:
        shown = ", ".join(f"{code} ({count})" for code, count in codes[:REASON_CODES])
        more = len(codes) - REASON_CODES
        parts.append(f"codes: {shown}" + (f" and {more} more" if more > 0 else ""))
    if not parts:
        return (
            "cancelled (no error recorded)"
            if run.status == RunStatus.CANCELLED.value
            else "no reason recorded"
        )
    return "; ".join(parts)


def attention_row(run: Run, name: str, status: str, reason: str) -> dict[str, Any]:
    """One row of the table of runs that need an auditor's attention."""
    return {
        "id": run.id,
        "connection": name,
        "status": status,
        "kind": run.kind,
        "queued_at": run.queued_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "error_code": run.error_code,
        "reason": reason,
    }


def attention(
    session: Session, rows: list[tuple[Run, str]], specs: dict[str, AlertsSpec], now: dt.datetime
) -> list[dict[str, Any]]:
    """Every failed, partially failed, stuck or cancelled run of ``rows``, oldest first, with its reason."""
    finals = [(run, name) for run, name in rows if run.status in ATTENTION_FINAL]
    codes = failure_codes(session, [run.id for run, _ in finals])
    found = [
        attention_row(run, name, run.status, final_reason(run, codes.get(run.id, []))) for run, name in finals
    ]
    for run, name in rows:
        why = stuck_reason(run, specs[name], now)
        if why is not None:
            found.append(attention_row(run, name, STUCK, why))
    return sorted(found, key=lambda row: (row["queued_at"], row["id"]))
