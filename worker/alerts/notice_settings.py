"""Changing a connection's alert settings in the ledger: admins only, always audited, 72 hours at most.

The connection file's ``[alerts]`` table is the usual way (``regsync connection apply`` audits the diff);
this is the direct way for the CLI and the HTTP API, which pass the caller's role.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.alerts.config import AlertsSpec
from worker.connections.apply import spec_data, spec_hash
from worker.connections.spec import parse_spec
from worker.errors import ConnectionNotFound, NoticeSettingsRefused
from worker.ledger.audit import append_event
from worker.ledger.models import Connection
from worker.roles import Role


def _validated(current: dict[str, Any], changes: dict[str, Any]) -> AlertsSpec:
    try:
        return AlertsSpec.model_validate({**current, **changes})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'alerts'}: {err['msg']}" for err in exc.errors()
        )
        raise NoticeSettingsRefused(f"alert settings refused: {problems}") from None


def set_alert_settings(
    session: Session,
    connection_name: str,
    changes: dict[str, Any],
    *,
    actor: str,
    role: str = Role.ADMIN.value,
) -> dict[str, Any]:
    """Change some ``[alerts]`` settings of a connection and audit the change.

    Args:
        session: A ledger session; the caller commits.
        connection_name: The connection.
        changes: Settings to change, e.g. ``{"notice_period_minutes": 240}``.
        actor: Who changes them (audit trail).
        role: The caller's role; only ``admin`` may change alert settings.

    Returns:
        The connection's alert settings after the change.

    Raises:
        NoticeSettingsRefused: Not an admin, or the settings are invalid (a notice period above 72 hours).
        ConnectionNotFound: No such connection.
    """
    if role not in {r.value for r in Role} or not Role(role).allows(Role.ADMIN):
        raise NoticeSettingsRefused(f"only admins change alert settings; role {role!r} may not")
    connection = session.scalar(
        select(Connection).where(Connection.name == connection_name).with_for_update()
    )
    if connection is None:
        raise ConnectionNotFound(
            f"no connection named {connection_name!r}; list them with `regsync connection list`"
        )
    current = dict(connection.spec.get("alerts") or {})
    before = _validated(current, {})
    after = _validated(current, changes)
    data = spec_data(parse_spec({**connection.spec, "alerts": after.model_dump(mode="json")}))
    connection.spec, connection.spec_hash = data, spec_hash(data)
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    changed = sorted(key for key in new if old.get(key) != new[key] and key != "channels")
    append_event(
        session,
        actor=actor,
        action="alerts.settings",
        target=f"connection:{connection_name}",
        before=before.notice_settings() | {key: old[key] for key in changed},
        after=after.notice_settings() | {key: new[key] for key in changed},
    )
    return after.model_dump(mode="json")
