"""Alert numbers for /metrics: open (unresolved) alerts by kind."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.alerts.models import Alert, AlertKind, AlertStatus


def open_alerts_by_kind(session: Session) -> dict[str, int]:
    """Unresolved alerts by kind, every kind present (0 when none), so the series exist before the first."""
    counts = {kind.value: 0 for kind in AlertKind}
    query = (
        select(Alert.kind, func.count())
        .where(Alert.status != AlertStatus.RESOLVED.value)
        .group_by(Alert.kind)
    )
    for kind, count in session.execute(query):
        counts[kind] = int(count)
    return counts
