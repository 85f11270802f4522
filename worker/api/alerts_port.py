"""The API's view of alerts, kept apart so the routes and /metrics work whether or not alerting is installed.

TEMPORARY until worker/alerts lands: every function answers "not available".
"""

from __future__ import annotations

from sqlalchemy.orm import Session


def open_alerts_by_kind(session: Session) -> dict[str, int] | None:
    """Open alerts by kind, or None when this build has no alerts."""
    return None
