"""`regsync alerts test CONNECTION`: a test notice through every channel, each attempt recorded as a delivery."""

from __future__ import annotations

import datetime as dt

from worker.alerts.channels import ChannelFactory, build_channels
from worker.alerts.models import AlertDelivery, NoticeKind
from worker.alerts.notify import send_all
from worker.alerts.payload import check_notice
from worker.alerts.snapshot import alert_settings
from worker.connections.apply import load_connection
from worker.ledger.db import session_scope
from worker.ledger.models import utcnow


def send_test_notice(
    connection: str, actor: str, *, now: dt.datetime | None = None, channels: ChannelFactory = build_channels
) -> dict[str, str | None]:
    """Send a test notice through each channel of ``connection``.

    Returns:
        Per channel name: None when delivered, else why not (an empty dict: no channels configured).

    Raises:
        ConnectionNotFound: No such connection.
    """
    now = now or utcnow()
    with session_scope() as session:
        row, _spec = load_connection(session, connection)
        settings = alert_settings(row.spec)
        built = channels(session, row.id, settings)
        connection_id = row.id
    names = sorted(settings.channels)
    result = send_all(built, names, check_notice(connection, connection_id, now, actor))
    failed = {**result.transient, **result.permanent}
    with session_scope() as session:
        for name in names:
            session.add(
                AlertDelivery(
                    alert_id=None,
                    connection_id=connection_id,
                    channel=name,
                    notice=NoticeKind.TEST.value,
                    at=now,
                    ok=name in result.ok,
                    error=failed.get(name),
                )
            )
    return {name: failed.get(name) for name in names}
