"""The alert evaluator: run after every run and on beat every 30 s.

One pass: detect conditions per connection → open alerts for new ones (a volume anomaly is also audited, with
counts), resolve alerts whose condition cleared → send due first notices, escalations and recovery notices →
export new events to the SIEM. A failure on one connection or one alert is logged and its deadline pushed
forward; the pass goes on with the rest.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import assert_never

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import get_settings
from worker.alerts import access, lifecycle, notify, siem
from worker.alerts.channels import ChannelFactory, build_channels
from worker.alerts.detectors import DETECTORS, Condition, detect
from worker.alerts.models import Alert, AlertKind, AlertStatus
from worker.alerts.snapshot import ConnectionState, load_snapshot
from worker.ledger.audit import append_event
from worker.ledger.db import session_scope
from worker.ledger.models import utcnow

log = logging.getLogger(__name__)

#: Alerts handled per phase per pass; the rest wait for the next pass (30 s later).
BATCH = 200
DETECTED_KINDS = frozenset(kind.value for kind in DETECTORS)
#: The audit action of a run the volume-anomaly detector flagged, and the counts its event keeps.
VOLUME_ACTION = "run.volume_anomaly"
VOLUME_FACTS = ("run_id", "metric", "value", "median", "history", "planned", "updated", "failed")


@dataclass(slots=True)
class EvaluateReport:
    """What one pass did (counts)."""

    opened: int = 0
    resolved: int = 0
    notified: int = 0
    escalated: int = 0
    recovered: int = 0
    failed: int = 0
    exported: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def plan_changes(
    conditions: Iterable[Condition], unresolved: Iterable[tuple[int | None, str, str]]
) -> tuple[list[Condition], set[tuple[int | None, str, str]]]:
    """Pure: the conditions that need a new alert, and the unresolved keys whose condition cleared."""
    current = {condition.key: condition for condition in conditions}
    open_keys = set(unresolved)
    to_open = [condition for key, condition in current.items() if key not in open_keys]
    return to_open, open_keys - set(current)


def reconcile(state: ConnectionState, now: dt.datetime, report: EvaluateReport) -> None:
    """Open and resolve one connection's detector alerts so that they match what holds at ``now``."""
    conditions = detect(state, now)
    notice = dt.timedelta(minutes=state.settings.notice_period_minutes)
    with session_scope() as session:
        lifecycle.serialise_writers(session)
        alerts = lifecycle.unresolved(session, state.connection_id, DETECTED_KINDS)
        by_key: dict[tuple[int | None, str, str], Alert] = {
            (a.connection_id, a.kind, a.subject): a for a in alerts
        }
        to_open, cleared = plan_changes(conditions, by_key)
        for condition in to_open:
            if lifecycle.open_alert(session, condition, notice, now) is not None:
                report.opened += 1
                log.warning("alert opened", extra={"kind": condition.kind.value, "connection": state.name})
                audit_volume_anomaly(session, condition, state.name)
        for key in sorted(cleared):
            if lifecycle.resolve(session, by_key[key].id, now) is not None:
                report.resolved += 1
                log.info("alert resolved", extra={"kind": key[1], "connection": state.name})


def audit_volume_anomaly(session: Session, condition: Condition, connection: str) -> None:
    """A run that changed unusually many records leaves an audit event (counts only) with its alert."""
    if condition.kind is not AlertKind.VOLUME_ANOMALY:
        return
    after = {key: condition.details.get(key) for key in VOLUME_FACTS}
    target = f"connection:{connection}/run:{condition.run_id}"
    append_event(session, actor=lifecycle.SYSTEM_ACTOR, action=VOLUME_ACTION, target=target, after=after)


def _due(statement: object) -> list[tuple[int, int]]:
    with session_scope() as session:
        return [(row[0], row[1]) for row in session.execute(statement)]  # type: ignore[call-overload]


def due_notices(now: dt.datetime) -> list[tuple[int, int]]:
    retry_due = Alert.retry_at.is_(None) | (Alert.retry_at <= now)
    return _due(
        select(Alert.id, Alert.escalation_level)
        .where(Alert.status == AlertStatus.OPEN.value, retry_due)
        .order_by(Alert.notify_by, Alert.id)
        .limit(BATCH)
    )


def due_escalations(now: dt.datetime) -> list[tuple[int, int]]:
    return _due(
        select(Alert.id, Alert.escalation_level)
        .where(Alert.status == AlertStatus.NOTIFIED.value, Alert.escalate_at <= now)
        .order_by(Alert.escalate_at, Alert.id)
        .limit(BATCH)
    )


def due_recoveries(now: dt.datetime) -> list[tuple[int, int]]:
    retry_due = Alert.retry_at.is_(None) | (Alert.retry_at <= now)
    return _due(
        select(Alert.id, Alert.escalation_level)
        .where(
            Alert.status == AlertStatus.RESOLVED.value,
            Alert.notified_at.is_not(None),
            Alert.recovery_sent_at.is_(None),
            retry_due,
        )
        .order_by(Alert.resolved_at, Alert.id)
        .limit(BATCH)
    )


def tally(report: EvaluateReport, outcome: notify.NoticeOutcome) -> None:
    """Count one alert's outcome in the pass's report (an outcome that sent nothing counts nowhere)."""
    match outcome:
        case notify.NoticeOutcome.NOTIFIED:
            report.notified += 1
        case notify.NoticeOutcome.ESCALATED:
            report.escalated += 1
        case notify.NoticeOutcome.RECOVERED:
            report.recovered += 1
        case notify.NoticeOutcome.FAILED:
            report.failed += 1
        case (
            notify.NoticeOutcome.NOT_CLAIMED
            | notify.NoticeOutcome.NO_CHANNELS
            | notify.NoticeOutcome.POLICY_EXHAUSTED
        ):
            pass
        case _:
            assert_never(outcome)


def _each(
    rows: list[tuple[int, int]],
    action: Callable[[int, int], notify.NoticeOutcome],
    report: EvaluateReport,
    now: dt.datetime,
) -> None:
    for alert_id, level in rows:
        try:
            outcome = action(alert_id, level)
        except Exception as exc:  # one bad row must not stop the loop
            log.exception("alert %s could not be handled; retried later", alert_id)
            report.errors += 1
            notify.push_deadlines(alert_id, now, f"evaluator error: {type(exc).__name__}")
            continue
        tally(report, outcome)


def _send_due(
    now: dt.datetime, clock: notify.Clock, channels: ChannelFactory, url: str | None, report: EvaluateReport
) -> None:
    """First notices, escalations and recovery notices whose time has come (sent at ``clock()``)."""
    _each(
        due_notices(now),
        lambda a, _l: notify.notify(a, clock(), channels, url, clock=clock),
        report,
        now,
    )
    _each(
        due_escalations(now),
        lambda a, lvl: notify.escalate(a, lvl, clock(), channels, url, clock=clock),
        report,
        now,
    )
    _each(
        due_recoveries(now),
        lambda a, _l: notify.recover(a, clock(), channels, url, clock=clock),
        report,
        now,
    )


def evaluate(
    now: dt.datetime | None = None,
    *,
    channels: ChannelFactory = build_channels,
    sinks: list[siem.Sink] | None = None,
) -> EvaluateReport:
    """One pass of the evaluator at ``now`` (default: the current time).

    Args:
        now: The evaluation time; tests pass a frozen clock's time.
        channels: Builds a connection's channels (fakes in unit tests).
        sinks: SIEM sinks; default from REGSYNC_SIEM_FILE / REGSYNC_SIEM_SYSLOG.
    """
    fixed = now
    now = fixed or utcnow()
    clock: notify.Clock = (lambda: now) if fixed is not None else utcnow
    settings = get_settings()
    report = EvaluateReport()
    with session_scope() as session:
        states = load_snapshot(session, now)
    for state in states:
        try:
            reconcile(state, now, report)
        except Exception:
            log.exception("alerts of connection %s could not be evaluated", state.name)
            report.errors += 1
    try:
        report.resolved += access.resolve_quiet(now)
    except Exception:
        log.exception("access anomalies could not be resolved; retried next pass")
        report.errors += 1
    _send_due(now, clock, channels, settings.public_url, report)
    try:
        report.exported = siem.export(siem.sinks_from_settings(settings) if sinks is None else sinks, now)
    except Exception:
        log.exception("SIEM export failed; it resumes from its cursor next time")
        report.errors += 1
    if any(v for k, v in report.as_dict().items() if k != "exported"):
        log.info("alerts evaluated", extra=report.as_dict())
    return report
