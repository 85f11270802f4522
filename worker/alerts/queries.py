"""Alert reads and the acknowledge action, as plain domain functions for the CLI and the HTTP API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.alerts import lifecycle
from worker.alerts.models import Alert, AlertDelivery, AlertStatus, AlertTransition, owner_name
from worker.alerts.payload import alert_summary
from worker.errors import AlertNotFound, ConnectionNotFound
from worker.ledger.audit import append_event
from worker.ledger.models import Connection, utcnow


def _names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Connection.id, Connection.name)).all())


def list_alerts(
    session: Session,
    *,
    open_only: bool = False,
    connection: str | None = None,
    connection_ids: set[int] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alerts newest first, as JSON-ready dicts.

    Args:
        session: A ledger session.
        open_only: Only unresolved alerts (open, notified or acknowledged).
        connection: Only this connection's alerts (by name).
        connection_ids: Only these connections (an API key's scope); None means all.
        limit: At most this many.

    Raises:
        ConnectionNotFound: ``connection`` does not exist.
    """
    names = _names(session)
    query = select(Alert)
    if open_only:
        query = query.where(Alert.status != AlertStatus.RESOLVED.value)
    if connection is not None:
        ids = [cid for cid, name in names.items() if name == connection]
        if not ids:
            raise ConnectionNotFound(
                f"no connection named {connection!r}; list them with `regsync connection list`"
            )
        query = query.where(Alert.connection_id == ids[0])
    if connection_ids is not None:
        query = query.where(Alert.connection_id.in_(sorted(connection_ids)))
    rows = session.scalars(query.order_by(Alert.opened_at.desc(), Alert.id.desc()).limit(limit))
    return [alert_summary(alert, owner_name(names, alert.connection_id)) for alert in rows]


def get_alert(session: Session, alert_id: int) -> Alert:
    """The alert ``alert_id``.

    Raises:
        AlertNotFound: No such alert.
    """
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise AlertNotFound(f"no alert {alert_id}; list alerts with `regsync alerts list`")
    return alert


def show_alert(session: Session, alert_id: int) -> dict[str, Any]:
    """One alert with its transitions and delivery attempts."""
    alert = get_alert(session, alert_id)
    view = alert_summary(alert, owner_name(_names(session), alert.connection_id))
    transitions = session.scalars(
        select(AlertTransition).where(AlertTransition.alert_id == alert_id).order_by(AlertTransition.id)
    )
    deliveries = session.scalars(
        select(AlertDelivery).where(AlertDelivery.alert_id == alert_id).order_by(AlertDelivery.id)
    )
    view["transitions"] = [
        {
            "at": t.at.isoformat(),
            "event": t.event,
            "from": t.from_status,
            "to": t.to_status,
            "escalation_level": t.escalation_level,
            "actor": t.actor,
        }
        for t in transitions
    ]
    view["deliveries"] = [
        {"at": d.at.isoformat(), "channel": d.channel, "notice": d.notice, "ok": d.ok, "error": d.error}
        for d in deliveries
    ]
    return view


def ack_alert(session: Session, alert_id: int, actor: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """Acknowledge an alert (escalation stops) and audit who did it.

    Raises:
        AlertNotFound: No such alert.
        StateConflict: Already acknowledged or resolved.
    """
    now = now or utcnow()
    lifecycle.serialise_writers(session)
    before = get_alert(session, alert_id).status
    alert = lifecycle.acknowledge(session, alert_id, actor, now)
    name = owner_name(_names(session), alert.connection_id)
    append_event(
        session,
        actor=actor,
        action="alert.ack",
        target=f"connection:{name}/alert:{alert_id}",
        before={"status": before},
        after={"status": alert.status, "escalation_level": alert.escalation_level},
    )
    return alert_summary(alert, name)
