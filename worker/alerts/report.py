"""The compliance report: runs and outcomes, alerts by kind, time to detect and to notify, notices within their
deadline, escalations, and whether the audit chain is intact, over a window ending now.

Percentiles are nearest-rank (the smallest value with at least q of the values at or below it), so every
number in the report is one that was actually measured.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from worker.alerts.config import AlertsSpec
from worker.alerts.models import Alert, AlertDelivery, AlertEvent, AlertStatus, AlertTransition, owner_name
from worker.alerts.report_facts import (
    ATTENTION_FINAL,
    STUCK,
    alerts_spec,
    attention,
    channel_status,
    waived_notices,
)
from worker.errors import ConfigurationError, ConnectionNotFound
from worker.ledger.audit import verify_chain
from worker.ledger.models import Connection, Run, RunMode
from worker.retention.facts import erasures_since, retention_facts

_SINCE = re.compile(r"^\s*(\d{1,9})\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: Runs drawn on the timeline at most (the newest).
TIMELINE_RUNS = 2000
#: The longest period a report covers (ten years).
MAX_SINCE_DAYS = 3660


def parse_since(text: str, label: str = "--since") -> dt.timedelta:
    """``30d``, ``12h``, ``90m`` or ``2w`` as a timedelta (at most ``MAX_SINCE_DAYS``).

    Raises:
        ConfigurationError: Anything else (the message names the input as ``label``).
    """
    match = _SINCE.match(text)
    if not match or int(match.group(1)) == 0:
        raise ConfigurationError(f"{label} {text!r}: give a number and a unit, e.g. 30d, 12h, 90m or 2w")
    span = dt.timedelta(**{_UNITS[match.group(2)]: min(int(match.group(1)), MAX_SINCE_DAYS * 24 * 60)})
    if span > dt.timedelta(days=MAX_SINCE_DAYS):
        raise ConfigurationError(f"{label} {text!r} is too long: at most {MAX_SINCE_DAYS} days")
    return span


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def distribution(values: list[float]) -> dict[str, Any]:
    """count, p50, p95 and max of durations in seconds."""
    rounded = [round(v, 3) for v in values]
    return {
        "count": len(rounded),
        "p50": percentile(rounded, 0.5),
        "p95": percentile(rounded, 0.95),
        "max": max(rounded) if rounded else None,
    }


def _runs(session: Session, start: dt.datetime, ids: list[int]) -> list[tuple[Run, str]]:
    query = (
        select(Run, Connection.name)
        .join(Connection, Connection.id == Run.connection_id)
        .where(
            Run.connection_id.in_(ids),
            or_(Run.queued_at >= start, Run.finished_at.is_(None), Run.finished_at >= start),
        )
        .order_by(Run.queued_at.desc(), Run.id.desc())
    )
    return [(run, name) for run, name in session.execute(query)]


def _run_section(rows: list[tuple[Run, str]]) -> dict[str, Any]:
    by_connection: dict[str, Counter[str]] = {}
    for run, name in rows:
        by_connection.setdefault(name, Counter())[run.status] += 1
    modes = Counter(run.mode for run, _ in rows)
    return {
        "total": len(rows),
        "by_status": dict(sorted(Counter(run.status for run, _ in rows).items())),
        # Changes runs count like any other run; this says how many of each mode there were.
        "by_mode": {mode.value: modes[mode.value] for mode in RunMode},
        "by_connection": {name: dict(sorted(c.items())) for name, c in sorted(by_connection.items())},
    }


def _notice_section(alerts: list[Alert], now: dt.datetime) -> dict[str, Any]:
    """Alerts whose notice was due (deadline passed, or notified already), and how many were in time."""
    verdicts = Counter(notice_verdict(a, now) for a in alerts)
    due = len(alerts) - verdicts["pending"]
    return {
        "due": due,
        "within_deadline": verdicts["in time"],
        "late": verdicts["late"],
        "never_sent": verdicts["never sent"],
        "within_deadline_pct": round(100.0 * verdicts["in time"] / due, 2) if due else None,
        "pending": verdicts["pending"],
    }


def notice_verdict(alert: Alert, now: dt.datetime) -> str:
    """Whether this alert's notice met its deadline: in time, late, never sent, or pending (not yet due)."""
    if alert.notified_at is not None:
        return "in time" if alert.notified_at <= alert.notify_by else "late"
    return "never sent" if alert.notify_by <= now else "pending"


def _alert_rows(alerts: list[Alert], names: dict[int, str], now: dt.datetime) -> list[dict[str, Any]]:
    """One row per alert: what it was about, and the times an auditor checks a notice deadline against."""
    return [
        {
            "id": a.id,
            "kind": a.kind,
            "connection": owner_name(names, a.connection_id),
            "run_id": a.run_id,
            "status": a.status,
            "detected_at": _iso(a.detected_at),
            "notify_by": _iso(a.notify_by),
            "notified_at": _iso(a.notified_at),
            "acknowledged_at": _iso(a.acknowledged_at),
            "resolved_at": _iso(a.resolved_at),
            "notice": notice_verdict(a, now),
        }
        for a in alerts
    ]


def _transition_counts(session: Session, alert_ids: list[int]) -> Counter[str]:
    if not alert_ids:
        return Counter()
    query = (
        select(AlertTransition.event, func.count())
        .where(AlertTransition.alert_id.in_(alert_ids))
        .group_by(AlertTransition.event)
    )
    return Counter({event: int(count) for event, count in session.execute(query)})


def _delivery_counts(session: Session, alert_ids: list[int]) -> dict[str, int]:
    if not alert_ids:
        return {"ok": 0, "failed": 0}
    query = (
        select(AlertDelivery.ok, func.count())
        .where(AlertDelivery.alert_id.in_(alert_ids))
        .group_by(AlertDelivery.ok)
    )
    counts = {bool(ok): int(n) for ok, n in session.execute(query)}
    return {"ok": counts.get(True, 0), "failed": counts.get(False, 0)}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _timeline(
    rows: list[tuple[Run, str]], alerts: list[Alert], names: dict[int, str], stuck: set[int]
) -> dict[str, Any]:
    """Runs to draw (every run needing attention, then the newest others) and alert markers."""
    problem = [pair[0].id in stuck or pair[0].status in ATTENTION_FINAL for pair in rows]
    drawn = [pair for pair, p in zip(rows, problem, strict=True) if p]
    drawn += [pair for pair, p in zip(rows, problem, strict=True) if not p][
        : max(0, TIMELINE_RUNS - len(drawn))
    ]
    runs = [
        {
            "id": run.id,
            "connection": name,
            "status": STUCK if run.id in stuck else run.status,
            "start": _iso(run.started_at or run.queued_at),
            "end": _iso(run.finished_at),
        }
        for run, name in drawn
    ]
    marks = [
        {
            "id": a.id,
            "kind": a.kind,
            "connection": owner_name(names, a.connection_id),
            "at": _iso(a.opened_at),
        }
        for a in alerts
    ]
    return {"runs": runs, "alerts": marks}


def _alert_section(session: Session, alerts: list[Alert]) -> dict[str, Any]:
    ids = [a.id for a in alerts]
    events = _transition_counts(session, ids)
    return {
        "total": len(alerts),
        "by_kind": dict(sorted(Counter(a.kind for a in alerts).items())),
        "by_status": dict(sorted(Counter(a.status for a in alerts).items())),
        "unresolved": sum(1 for a in alerts if a.status != AlertStatus.RESOLVED.value),
        "escalations": events.get(AlertEvent.ESCALATED.value, 0),
        "acknowledged": events.get(AlertEvent.ACKNOWLEDGED.value, 0),
        "recovery_notices": sum(1 for a in alerts if a.recovery_sent_at is not None),
        "deliveries": _delivery_counts(session, ids),
    }


def _scope(session: Session, names: Sequence[str] | None) -> list[Connection]:
    """The connections named (each must exist), or every connection; sorted by name."""
    if not names:
        return list(session.scalars(select(Connection).order_by(Connection.name)))
    found = {c.name: c for c in session.scalars(select(Connection).where(Connection.name.in_(set(names))))}
    missing = sorted(set(names) - found.keys())
    if missing:
        raise ConnectionNotFound(
            f"no connection named {missing[0]!r}; list them with `regsync connection list`"
        )
    return [found[name] for name in sorted(found)]


def _connection_section(
    session: Session, connection: Connection, rows: list[tuple[Run, str]], specs: dict[str, AlertsSpec]
) -> dict[str, Any]:
    mine = Counter(run.status for run, name in rows if name == connection.name)
    return {
        "name": connection.name,
        "enabled": connection.enabled,
        "notifications": channel_status(specs[connection.name]),
        "enabled_without_notices": waived_notices(session, connection.name),
        "runs": dict(sorted(mine.items())),
        "retention": retention_facts(session, connection),
    }


def _chain(session: Session) -> dict[str, Any]:
    chain = verify_chain(session)
    return {
        "ok": chain.ok,
        "checked": chain.checked,
        "broken_id": chain.broken_id,
        "reason": chain.reason,
        "head_hash": chain.head_hash,
    }


def compliance_report(
    session: Session, now: dt.datetime, since: dt.timedelta, connections: Sequence[str] | None = None
) -> dict[str, Any]:
    """The report over ``[now - since, now]`` for ``connections`` (default: all) as JSON-ready data.

    Alerts are counted by when they opened; runs that overlap the period are included (a run queued before
    it and still running is there, and may be stuck).

    Raises:
        ConnectionNotFound: A connection named does not exist.
    """
    start = now - since
    scope = _scope(session, connections)
    ids = [c.id for c in scope]
    specs = {c.name: alerts_spec(c) for c in scope}
    rows = _runs(session, start, ids)
    alerts = _alerts(session, start, ids if connections else None)
    needs_attention = attention(session, rows, specs, now)
    stuck = {row["id"] for row in needs_attention if row["status"] == STUCK}
    return {
        "generated_at": now.isoformat(),
        "period": {
            "since": start.isoformat(),
            "until": now.isoformat(),
            "seconds": int(since.total_seconds()),
        },
        "connections": [_connection_section(session, c, rows, specs) for c in scope],
        "runs": _run_section(rows),
        "attention": needs_attention,
        "alerts": _alert_section(session, alerts),
        "alert_list": _alert_rows(alerts, {c.id: c.name for c in scope}, now),
        "time_to_detect_s": distribution([(a.opened_at - a.detected_at).total_seconds() for a in alerts]),
        "time_to_notify_s": distribution(
            [(a.notified_at - a.detected_at).total_seconds() for a in alerts if a.notified_at is not None]
        ),
        "notices": _notice_section(alerts, now),
        "audit_chain": _chain(session),
        "erasures": erasures_since(session, start, scope if connections else None),
        "timeline": _timeline(rows, alerts, {c.id: c.name for c in scope}, stuck),
    }


def _alerts(session: Session, start: dt.datetime, ids: list[int] | None) -> list[Alert]:
    query = select(Alert).where(Alert.opened_at >= start).order_by(Alert.id)
    if ids is not None:
        query = query.where(Alert.connection_id.in_(ids))
    return list(session.scalars(query))
