"""Access anomalies: a burst of failed authentications from one address, or an API key probing other tenants'
ids. Each opens one ``access_anomaly`` alert (one while it is unresolved), notified like any other alert.

Routing: a failed authentication has no tenant, so a burst is an installation-wide (operator) alert without a
connection, sent through ``REGSYNC_OPERATOR_ALERTS_FILE``'s channels. A probing key is a tenant's key: its
alert goes to every connection in the key's scope (their owners must know their key is misused). An alert
carries the client address and, for a probe, the key's id; never the key.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from worker.alerts import lifecycle
from worker.alerts.config import AlertsSpec
from worker.alerts.detectors import Condition
from worker.alerts.models import Alert, AlertKind, AlertStatus
from worker.alerts.operator import operator_alerts
from worker.alerts.snapshot import alert_settings
from worker.errors import ConfigurationError
from worker.ledger.db import session_scope
from worker.ledger.models import Connection

log = logging.getLogger(__name__)

#: Failed authentications from one address within a minute that open an alert.
FAILED_AUTH_BURST = 50
#: 404s on run or alert ids that exist under another connection, by one key within a minute.
PROBE_RUN = 10
#: An access anomaly resolves once nothing new was seen for this long.
QUIET = dt.timedelta(minutes=30)


def failed_auth_burst(address: str, count: int, now: dt.datetime) -> None:
    """Open (or refresh) the operator's alert for a burst of failed authentications from ``address``."""
    details = {"reason": "failed_authentications", "address": address, "count": count, "window_s": 60}
    _note([Condition(None, AlertKind.ACCESS_ANOMALY, f"address:{address}", now, None, details)], now)


def key_probing(key_id: int, address: str, connections: Iterable[int], count: int, now: dt.datetime) -> None:
    """Open (or refresh) an alert on each connection of key ``key_id``, which asked for other tenants' ids."""
    details = {"reason": "foreign_ids", "key_id": key_id, "address": address, "count": count, "window_s": 60}
    subject = f"apikey:{key_id}"
    _note(
        [Condition(c, AlertKind.ACCESS_ANOMALY, subject, now, None, details) for c in sorted(connections)],
        now,
    )


def _notice_period(session: Any, connection_id: int | None) -> dt.timedelta:
    if connection_id is None:
        try:
            spec = operator_alerts().spec
        except ConfigurationError as exc:  # the alert is still recorded; the evaluator reports the file
            log.error("operator alert settings unreadable: %s", exc.message)
            spec = AlertsSpec()
    else:
        connection = session.get(Connection, connection_id)
        spec = alert_settings(connection.spec if connection is not None else {})
    return dt.timedelta(minutes=spec.notice_period_minutes)


def _note(conditions: list[Condition], now: dt.datetime) -> None:
    with session_scope() as session:
        lifecycle.serialise_writers(session)
        for condition in conditions:
            notice = _notice_period(session, condition.connection_id)
            if lifecycle.open_alert(session, condition, notice, now) is not None:
                log.warning("access anomaly", extra={"reason": condition.details["reason"]})
                continue
            for alert in lifecycle.unresolved(session, condition.connection_id, [AlertKind.ACCESS_ANOMALY]):
                if alert.subject == condition.subject:
                    alert.details = {**alert.details, "last_seen_at": now.isoformat()}


def resolve_quiet(now: dt.datetime) -> int:
    """Resolve the access anomalies with nothing new for ``QUIET``; how many were resolved."""
    resolved = 0
    with session_scope() as session:
        lifecycle.serialise_writers(session)
        query = select(Alert).where(
            Alert.kind == AlertKind.ACCESS_ANOMALY.value, Alert.status != AlertStatus.RESOLVED.value
        )
        for alert in list(session.scalars(query)):
            last = alert.details.get("last_seen_at")
            seen = dt.datetime.fromisoformat(last) if isinstance(last, str) else alert.detected_at
            if now - seen >= QUIET and lifecycle.resolve(session, alert.id, now) is not None:
                resolved += 1
    return resolved
