"""Alert state changes, each compare-and-set and each leaving an ``alert_transitions`` row.

``open → notified → acknowledged → resolved`` (open and notified may also resolve directly, and open may be
acknowledged before any notice went out). Escalation keeps the status ``notified`` and raises
``escalation_level``; it is recorded as a transition too. Every writer of transitions serialises on one lock
(PostgreSQL advisory lock; SQLite's single writer), so transition ids are committed in id order and the SIEM
feed can follow them with a plain cursor.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.alerts.detectors import Condition
from worker.alerts.models import Alert, AlertEvent, AlertStatus, AlertTransition
from worker.errors import AlertNotFound, StateConflict
from worker.ledger.db import hold_lock, updated_one

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "regsync"


def serialise_writers(session: Session) -> None:
    """Hold the alert-writer lock until this transaction ends (see the module docstring)."""
    hold_lock(
        session,
        "regsync.alert_transitions",
        sqlite_claim="UPDATE alert_feed_cursors SET name = name WHERE name IS NULL",
    )


def record(
    session: Session,
    alert: Alert,
    event: AlertEvent,
    before: str | None,
    now: dt.datetime,
    *,
    actor: str = SYSTEM_ACTOR,
) -> None:
    """Write the transition row of a change just made to ``alert``."""
    session.add(
        AlertTransition(
            alert_id=alert.id,
            at=now,
            event=event.value,
            from_status=before,
            to_status=alert.status,
            escalation_level=alert.escalation_level,
            actor=actor,
        )
    )
    session.flush()


def checked_detected_at(condition: Condition, now: dt.datetime) -> dt.datetime:
    """``detected_at`` of a condition, never in the future (a clock running ahead is logged and clamped)."""
    if condition.detected_at > now:
        log.warning(
            "detected_at in the future clamped to now",
            extra={"kind": condition.kind.value, "connection_id": condition.connection_id},
        )
        return now
    return condition.detected_at


def open_alert(
    session: Session, condition: Condition, notice: dt.timedelta, now: dt.datetime
) -> Alert | None:
    """Open an alert for ``condition`` unless an unresolved one with its key exists; None if it does."""
    detected = checked_detected_at(condition, now)
    alert = Alert(
        connection_id=condition.connection_id,
        kind=condition.kind.value,
        subject=condition.subject,
        status=AlertStatus.OPEN.value,
        run_id=condition.run_id,
        details=dict(condition.details),
        detected_at=detected,
        opened_at=now,
        notify_by=detected + notice,
        escalation_level=0,
        attempts=0,
    )
    try:
        with session.begin_nested():
            session.add(alert)
            session.flush()
    except IntegrityError:  # the partial unique index: someone opened it first
        return None
    record(session, alert, AlertEvent.OPENED, None, now)
    return alert


def unresolved(
    session: Session, connection_id: int | None, kinds: Iterable[str] | None = None
) -> list[Alert]:
    """The unresolved alerts of a connection, or the operator's for None (optionally of some kinds)."""
    owner = Alert.connection_id.is_(None) if connection_id is None else Alert.connection_id == connection_id
    query = select(Alert).where(owner, Alert.status != AlertStatus.RESOLVED.value)
    if kinds is not None:
        query = query.where(Alert.kind.in_(list(kinds)))
    return list(session.scalars(query.order_by(Alert.id)))


def _cas(session: Session, alert_id: int, old: Iterable[AlertStatus], **values: Any) -> Alert | None:
    """Update the alert only if its status is one of ``old``; the refreshed alert, or None."""
    olds = [status.value for status in old]
    result = session.execute(
        update(Alert).where(Alert.id == alert_id, Alert.status.in_(olds)).values(**values)
    )
    if not updated_one(result):
        return None
    alert = session.get(Alert, alert_id)
    if alert is not None:
        session.refresh(alert)
    return alert


def resolve(session: Session, alert_id: int, now: dt.datetime, actor: str = SYSTEM_ACTOR) -> Alert | None:
    """Any unresolved status → resolved (the condition cleared); None if it was resolved already."""
    before = session.scalar(select(Alert.status).where(Alert.id == alert_id))
    alert = _cas(
        session,
        alert_id,
        [AlertStatus.OPEN, AlertStatus.NOTIFIED, AlertStatus.ACKNOWLEDGED],
        status=AlertStatus.RESOLVED.value,
        resolved_at=now,
        escalate_at=None,
        retry_at=None,
    )
    if alert is not None:
        record(session, alert, AlertEvent.RESOLVED, before, now, actor=actor)
    return alert


def mark_notified(
    session: Session, alert_id: int, now: dt.datetime, escalate_at: dt.datetime | None
) -> Alert | None:
    """open → notified after a notice went out through at least one channel."""
    alert = _cas(
        session,
        alert_id,
        [AlertStatus.OPEN],
        status=AlertStatus.NOTIFIED.value,
        notified_at=now,
        escalate_at=escalate_at,
        retry_at=None,
        last_error=None,
    )
    if alert is not None:
        record(session, alert, AlertEvent.NOTIFIED, AlertStatus.OPEN.value, now)
    return alert


def mark_escalated(
    session: Session, alert_id: int, level: int, now: dt.datetime, escalate_at: dt.datetime | None
) -> Alert | None:
    """Raise the level from ``level`` to ``level + 1`` of a still-notified (unacknowledged) alert."""
    result = session.execute(
        update(Alert)
        .where(
            Alert.id == alert_id,
            Alert.status == AlertStatus.NOTIFIED.value,
            Alert.escalation_level == level,
        )
        .values(escalation_level=level + 1, escalate_at=escalate_at, last_error=None)
    )
    if not updated_one(result):
        return None
    alert = session.get(Alert, alert_id)
    assert alert is not None
    session.refresh(alert)
    record(session, alert, AlertEvent.ESCALATED, AlertStatus.NOTIFIED.value, now)
    return alert


def acknowledge(session: Session, alert_id: int, actor: str, now: dt.datetime) -> Alert:
    """open|notified → acknowledged: escalation stops. The caller audits it.

    Raises:
        AlertNotFound: No such alert.
        StateConflict: It is acknowledged or resolved already.
    """
    before = session.scalar(select(Alert.status).where(Alert.id == alert_id))
    if before is None:
        raise AlertNotFound(f"no alert {alert_id}; list alerts with `regsync alerts list`")
    alert = _cas(
        session,
        alert_id,
        [AlertStatus.OPEN, AlertStatus.NOTIFIED],
        status=AlertStatus.ACKNOWLEDGED.value,
        acknowledged_at=now,
        acknowledged_by=actor,
        escalate_at=None,
    )
    if alert is None:
        raise StateConflict(f"alert {alert_id} is {before} already; nothing was changed")
    record(session, alert, AlertEvent.ACKNOWLEDGED, before, now, actor=actor)
    return alert
