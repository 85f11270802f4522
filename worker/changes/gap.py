"""The ``feed_gap`` alert: a changes run found that its feed can no longer serve from the stored watermark.

Opened through the alert lifecycle (like worker/alerts/access.py's anomalies; no detector re-derives it), one
per connection while unresolved, and notified like any other alert. Its details carry the run and the source,
never org numbers or values. It is resolved by hand once a full reconcile ran and the watermark was reset.
"""

from __future__ import annotations

import datetime as dt
import logging

from worker.alerts import lifecycle
from worker.alerts.detectors import Condition
from worker.alerts.models import AlertKind
from worker.alerts.snapshot import alert_settings
from worker.ledger.db import session_scope
from worker.ledger.models import Connection, Run, utcnow

log = logging.getLogger(__name__)

SUBJECT = "feed"


def open_feed_gap(run: Run, message: str) -> bool:
    """Open the connection's ``feed_gap`` alert for ``run`` (unless one is open); True when it opened one."""
    now = utcnow()
    details = {"run_id": run.id, "reason": message}
    condition = Condition(run.connection_id, AlertKind.FEED_GAP, SUBJECT, now, run.id, details)
    with session_scope() as session:
        lifecycle.serialise_writers(session)
        connection = session.get(Connection, run.connection_id)
        spec = alert_settings(connection.spec if connection is not None else {})
        notice = dt.timedelta(minutes=spec.notice_period_minutes)
        opened = lifecycle.open_alert(session, condition, notice, now) is not None
    if opened:
        log.warning("feed_gap alert opened", extra={"run_id": run.id})
    return opened
