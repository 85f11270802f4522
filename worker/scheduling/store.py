"""Admin changes to schedules and to whether a connection runs by itself; every change is audited.

Changing when a schedule fires, and enabling a connection, restart its slot cursor at *now*: slots from
before the change (or from while it was disabled) are never caught up.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.alerts.config import AlertsSpec
from worker.errors import ConnectionNotFound, NoAlertChannel
from worker.ledger.audit import append_event
from worker.ledger.models import Connection, RunMode, utcnow
from worker.scheduling.cron import CronSchedule
from worker.scheduling.models import Schedule
from worker.scheduling.spec import ScheduleSpec, TimingSpec

SetAction = Literal["created", "updated", "unchanged"]


_TIMING = ("cron", "timezone")


def find_connection(session: Session, name: str, *, lock: bool = False) -> Connection:
    """The connection ``name`` (row-locked with ``lock`` on PostgreSQL).

    Raises:
        ConnectionNotFound: No connection has that name.
    """
    query = select(Connection).where(Connection.name == name)
    connection = session.scalar(query.with_for_update() if lock else query)
    if connection is None:
        raise ConnectionNotFound(
            f"no connection named {name!r}; list them with `regsync connection list` "
            "or apply one with `regsync connection apply FILE`"
        )
    return connection


def schedule_settings(row: Schedule) -> dict[str, Any]:
    """The admin-set part of a schedule row, as audited and shown (a changes schedule says its mode)."""
    settings: dict[str, Any] = {
        "cron": row.cron,
        "timezone": row.timezone,
        "concurrency": row.concurrency_policy,
        "starting_deadline_s": row.starting_deadline_s,
        "grace_s": row.grace_s,
    }
    if row.mode != RunMode.FULL.value:
        settings["mode"] = row.mode
    return settings


def _schedule_row(
    session: Session, connection_id: int, mode: RunMode, *, lock: bool = False
) -> Schedule | None:
    query = select(Schedule).where(Schedule.connection_id == connection_id, Schedule.mode == mode.value)
    return session.scalar(query.with_for_update() if lock else query)


def restart_cursor(row: Schedule, now: dt.datetime) -> None:
    """Forget slots up to ``now``: the next slot after ``now`` is the first that can run."""
    row.last_slot = now
    row.next_slot = CronSchedule(row.cron, row.timezone).next_slot(now)


def set_schedule(
    session: Session,
    connection: Connection,
    spec: TimingSpec,
    actor: str,
    now: dt.datetime | None = None,
    *,
    mode: RunMode = RunMode.FULL,
) -> SetAction:
    """Create or change ``connection``'s schedule of ``mode`` runs to ``spec``; audit it as ``schedule.set`` if
    it changed. A file's ``[schedule]`` with a ``[schedule.changes]`` table sets both schedules.

    Args:
        session: A session on the ledger; the caller commits.
        connection: The connection the schedule belongs to.
        spec: The validated schedule.
        actor: Who sets it, for the audit trail.
        now: The current time (tests pass a frozen one).
        mode: Which runs the schedule starts: full runs, or changes runs.

    Returns:
        ``created``, ``updated`` or ``unchanged`` (no audit event); of both schedules, the larger change.
    """
    now = now or utcnow()
    action = _set_one(session, connection, spec, actor, now=now, mode=mode)
    changes = spec.changes if isinstance(spec, ScheduleSpec) and mode is RunMode.FULL else None
    if changes is None:
        return action
    other = _set_one(session, connection, changes, actor, now=now, mode=RunMode.CHANGES)
    return min(action, other, key=_ACTIONS.index)


_ACTIONS: tuple[SetAction, ...] = ("created", "updated", "unchanged")


def _set_one(
    session: Session, connection: Connection, spec: TimingSpec, actor: str, *, now: dt.datetime, mode: RunMode
) -> SetAction:
    row = _schedule_row(session, connection.id, mode, lock=True)
    before = schedule_settings(row) if row is not None else None
    if row is None:
        row = Schedule(connection_id=connection.id, mode=mode.value)
        session.add(row)
    row.cron, row.timezone = spec.cron, spec.timezone
    row.concurrency_policy = spec.concurrency
    row.starting_deadline_s, row.grace_s = spec.starting_deadline_s, spec.grace_s
    after = schedule_settings(row)
    if before == after:
        return "unchanged"
    if before is None or any(before[key] != after[key] for key in _TIMING):
        restart_cursor(row, now)
    session.flush()
    target = f"connection:{connection.name}"
    append_event(session, actor=actor, action="schedule.set", target=target, before=before, after=after)
    return "created" if before is None else "updated"


def set_enabled(
    session: Session,
    name: str,
    enabled: bool,
    actor: str,
    now: dt.datetime | None = None,
    *,
    without_notices: bool = False,
) -> bool:
    """Enable or disable the connection's background runs; audited. False when it already was so.

    Enabling restarts the schedule's cursor at ``now``: slots that passed while disabled never run.

    Args:
        without_notices: Enable even though the connection has no alert channel (audited as such).

    Raises:
        NoAlertChannel: Enabling a connection without an alert channel, and ``without_notices`` not given.
    """
    connection = find_connection(session, name, lock=True)
    silent = enabled and not has_alert_channel(connection)
    if silent and not without_notices:
        raise NoAlertChannel(no_channel_message(name))
    if connection.enabled == enabled:
        return False
    connection.enabled = enabled
    rows = session.scalars(select(Schedule).where(Schedule.connection_id == connection.id).with_for_update())
    for row in rows if enabled else ():
        restart_cursor(row, now or utcnow())
    session.flush()
    after: dict[str, Any] = {"enabled": enabled} | ({"without_notices": True} if silent else {})
    append_event(
        session,
        actor=actor,
        action="connection.enable" if enabled else "connection.disable",
        target=f"connection:{name}",
        before={"enabled": not enabled},
        after=after,
    )
    return True


def has_alert_channel(connection: Connection) -> bool:
    """Whether the connection's stored ``[alerts]`` table names at least one channel."""
    return bool(AlertsSpec.model_validate(connection.spec.get("alerts") or {}).channels)


def no_channel_message(name: str, override: str = "--without-notices") -> str:
    """Why enabling ``name`` is refused, and the two ways on; ``override`` is how the caller says "without
    notices" (the CLI's flag, the API's field)."""
    return (
        f"{name} has no alert channel, so nobody would be told when its runs fail: add one to the [alerts] "
        f"table of its connection file and apply it, or enable it with {override} (audited)"
    )


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def schedule_view(session: Session, name: str, upcoming: int = 3) -> dict[str, Any]:
    """A connection's schedules and state for `regsync schedule show`: ``schedule`` (full runs) and
    ``changes_schedule`` (changes runs), each None when unset."""
    connection = find_connection(session, name)
    view: dict[str, Any] = {"connection": name, "enabled": connection.enabled}
    for key, mode in (("schedule", RunMode.FULL), ("changes_schedule", RunMode.CHANGES)):
        row = _schedule_row(session, connection.id, mode)
        view[key] = None if row is None else _row_view(row, upcoming)
    return view


def _row_view(row: Schedule, upcoming: int) -> dict[str, Any]:
    cron = CronSchedule(row.cron, row.timezone)
    slots: list[dt.datetime] = []
    after = max(row.last_slot or utcnow(), utcnow())
    for _ in range(upcoming):
        after = cron.next_slot(after)
        slots.append(after)
    return schedule_settings(row) | {
        "last_slot": _iso(row.last_slot),
        "next_slot": _iso(row.next_slot),
        "upcoming_local": [slot.astimezone(cron.zone).isoformat() for slot in slots],
    }
