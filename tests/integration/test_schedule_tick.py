"""The beat tick against a real ledger, with a frozen clock: one run per slot, concurrency and catch-up policies.

Most tests run on a copy of one migrated SQLite ledger (migrating takes ~2 s, copying a few ms); the race of
concurrent ticks runs on PostgreSQL. The same code runs in production every 30 s as the ``regsync.tick`` task.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from tests.conftest import RegsyncEnv, clean_environment
from tests.integration.insert_race import ThreadGate, assert_collided, race_run_inserts
from tests.unit.fakes import FakeDispatcher, counts, make_spec
from worker.connections.apply import apply_connection
from worker.ledger import runs
from worker.ledger.audit import verify_chain
from worker.ledger.db import reset_engines, session_scope
from worker.ledger.migrate import upgrade
from worker.ledger.models import AuditEvent, Connection, Run, RunKind, RunStatus
from worker.ledger.views import list_runs
from worker.scheduling.models import Schedule
from worker.scheduling.policy import MISSED, OVERLAP
from worker.scheduling.spec import make_schedule_spec
from worker.scheduling.store import find_connection, set_enabled, set_schedule
from worker.scheduling.tick import TickReport, tick

UTC = dt.UTC
T0 = dt.datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ledger_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("schedule-ledger") / "ledger.sqlite3"
    upgrade(f"sqlite:///{path}")
    reset_engines()
    yield str(path)


@pytest.fixture
def ledger(ledger_template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Like the ``env`` fixture, on a fresh copy of the module's migrated SQLite ledger."""
    target = tmp_path / "ledger.sqlite3"
    shutil.copyfile(ledger_template, target)
    url, key = f"sqlite:///{target}", Fernet.generate_key().decode("ascii")
    with clean_environment(monkeypatch, REGSYNC_DATABASE_URL=url, REGSYNC_SECRET_KEY=key):
        yield url


@pytest.fixture
def frozen() -> Iterator[Any]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def connect(
    name: str = "acme",
    *,
    enabled: bool = True,
    cron: str = "* * * * *",
    tz: str = "UTC",
    at: dt.datetime = T0,
    **schedule: Any,
) -> int:
    """A connection with a schedule whose cursor starts at ``at``; enabled unless told otherwise."""
    with session_scope() as session:
        connection = Connection(name=name, spec={}, spec_hash="0" * 64, enabled=False)
        session.add(connection)
        session.flush()
        set_schedule(session, connection, make_schedule_spec(cron, tz, **schedule), "alice", now=at)
        if enabled:
            set_enabled(session, name, True, "alice", now=at, without_notices=True)
        return connection.id


def run_rows(connection_id: int | None = None) -> list[Run]:
    query = select(Run).order_by(Run.scheduled_for, Run.id)
    if connection_id is not None:
        query = query.where(Run.connection_id == connection_id)
    with session_scope() as session:
        return list(session.scalars(query))


def tick_at(traveller: Any, now: dt.datetime, dispatch: FakeDispatcher | None = None) -> TickReport:
    traveller.move_to(now)
    return tick(dispatch or FakeDispatcher())


def tick_every(traveller: Any, start: dt.datetime, end: dt.datetime, step_s: float) -> FakeDispatcher:
    dispatch, now = FakeDispatcher(), start
    while now <= end:
        tick_at(traveller, now, dispatch)
        now += dt.timedelta(seconds=step_s)
    return dispatch


def active_manual_run(connection_id: int) -> int:
    with session_scope() as session:
        return runs.create_run(session, connection_id, kind=RunKind.MANUAL, triggered_by="bob").id


# --- DST -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "slot"),
    [
        (dt.datetime(2026, 3, 28, 23, 0, tzinfo=UTC), dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        (dt.datetime(2026, 10, 24, 22, 0, tzinfo=UTC), dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_0230_oslo_runs_exactly_once_on_a_dst_night(
    ledger: str, frozen: Any, start: dt.datetime, slot: dt.datetime
) -> None:
    connection_id = connect(cron="30 2 * * *", tz="Europe/Oslo", at=start)

    dispatch = tick_every(frozen, start, start + dt.timedelta(hours=4), 60)

    rows = run_rows(connection_id)
    assert [(r.scheduled_for, r.status) for r in rows] == [(slot, RunStatus.QUEUED.value)]
    assert dispatch.plans == [rows[0].id]


@pytest.mark.parametrize(
    ("day", "hours"), [((2026, 3, 29), 23), ((2026, 10, 25), 25)], ids=["spring-forward", "fall-back"]
)
def test_hourly_oslo_runs_once_per_real_hour_of_a_dst_day(
    ledger: str, frozen: Any, day: tuple[int, int, int], hours: int
) -> None:
    oslo = ZoneInfo("Europe/Oslo")
    midnight = dt.datetime(*day, tzinfo=oslo).astimezone(UTC)
    next_midnight = (dt.datetime(*day, tzinfo=oslo) + dt.timedelta(days=1)).replace(hour=0).astimezone(UTC)
    connection_id = connect(
        cron="0 * * * *", tz="Europe/Oslo", at=midnight - dt.timedelta(seconds=1), concurrency="allow"
    )

    tick_every(frozen, midnight, next_midnight - dt.timedelta(seconds=1), 900)

    slots = [r.scheduled_for for r in run_rows(connection_id)]
    assert len(slots) == hours == len(set(slots))
    assert slots == [midnight + dt.timedelta(hours=h) for h in range(hours)]
    assert {r.status for r in run_rows(connection_id)} == {RunStatus.QUEUED.value}


# --- exactly once ------------------------------------------------------------------------------------------


def test_a_redelivered_tick_with_a_stale_cursor_loses_to_the_unique_constraint(
    ledger: str, frozen: Any
) -> None:
    connection_id = connect()
    first, second = FakeDispatcher(), FakeDispatcher()

    report = tick_at(frozen, T0 + dt.timedelta(seconds=70), first)
    # A second beat that read the schedule before the first one moved its cursor:
    with session_scope() as session:
        session.execute(update(Schedule).values(last_slot=T0, next_slot=T0 + dt.timedelta(minutes=1)))
    stale = tick_at(frozen, T0 + dt.timedelta(seconds=75), second)

    assert report.started == 1
    assert counts(stale, "started", "lost") == {"started": 0, "lost": 1}
    assert len(run_rows(connection_id)) == 1
    assert (first.plans, second.plans) == ([run_rows()[0].id], [])


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_four_ticks_racing_for_one_slot_insert_once_and_three_lose_to_the_unique_constraint(
    env: RegsyncEnv,
) -> None:
    connection_id = connect()
    now = T0 + dt.timedelta(minutes=1, seconds=5)
    dispatchers, reports, errors = [FakeDispatcher() for _ in range(4)], [], []

    def beat(dispatch: FakeDispatcher) -> None:
        try:
            reports.append(tick(dispatch, now=now))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    # Each tick's insert of the slot's run waits until all four reached it: a collision, not four turns.
    with race_run_inserts(ThreadGate(len(dispatchers))) as attempts:
        threads = [
            threading.Thread(target=beat, args=(d,), name=f"tick{i}") for i, d in enumerate(dispatchers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    assert errors == []
    assert_collided([a.as_dict() for a in attempts], racers=4)
    assert sorted((r.started, r.lost, r.errors) for r in reports) == [(0, 1, 0)] * 3 + [(1, 0, 0)]
    assert [r.scheduled_for for r in run_rows(connection_id)] == [T0 + dt.timedelta(minutes=1)]
    assert sum(len(d.plans) for d in dispatchers) == 1


# --- concurrency policies ----------------------------------------------------------------------------------


def test_forbid_records_an_overlapping_slot_as_skipped_and_lists_it(ledger: str, frozen: Any) -> None:
    connection_id = connect()
    active = active_manual_run(connection_id)
    dispatch = FakeDispatcher()

    report = tick_at(frozen, T0 + dt.timedelta(seconds=61), dispatch)

    (row,) = [r for r in run_rows(connection_id) if r.kind == RunKind.SCHEDULED.value]
    assert report.skipped == 1
    assert dispatch.plans == []
    assert counts(row, "status", "error_code", "scheduled_for") == {
        "status": "skipped",
        "error_code": OVERLAP,
        "scheduled_for": T0 + dt.timedelta(minutes=1),
    }
    assert f"run {active}" in (row.error or "")
    with session_scope() as session:
        listed = list_runs(session, "acme")
    assert [(v["kind"], v["status"]) for v in listed] == [("scheduled", "skipped"), ("manual", "queued")]


def test_replace_asks_the_active_run_to_cancel_and_starts_the_slot(ledger: str, frozen: Any) -> None:
    connection_id = connect(concurrency="replace")
    active = active_manual_run(connection_id)
    dispatch = FakeDispatcher()

    tick_at(frozen, T0 + dt.timedelta(seconds=61), dispatch)

    rows = {r.id: r for r in run_rows(connection_id)}
    (new,) = [r for r in rows.values() if r.kind == "scheduled"]
    assert rows[active].cancel_requested is True
    assert (new.status, new.cancel_requested, dispatch.plans) == ("queued", False, [new.id])


def test_allow_starts_the_slot_next_to_the_active_run(ledger: str, frozen: Any) -> None:
    connection_id = connect(concurrency="allow")
    active = active_manual_run(connection_id)
    dispatch = FakeDispatcher()

    tick_at(frozen, T0 + dt.timedelta(seconds=61), dispatch)

    rows = {r.id: r for r in run_rows(connection_id)}
    assert len(dispatch.plans) == 1 and rows[dispatch.plans[0]].status == "queued"
    assert rows[active].cancel_requested is False


# --- catch-up ----------------------------------------------------------------------------------------------


def test_after_downtime_the_newest_slot_runs_once_and_older_ones_are_recorded_missed(
    ledger: str, frozen: Any
) -> None:
    connection_id = connect(cron="0 * * * *")
    dispatch = FakeDispatcher()

    report = tick_at(frozen, T0 + dt.timedelta(hours=5, minutes=10), dispatch)
    again = tick_at(frozen, T0 + dt.timedelta(hours=5, minutes=10, seconds=30), dispatch)

    rows = run_rows(connection_id)
    assert [r.scheduled_for for r in rows] == [T0 + dt.timedelta(hours=h) for h in range(1, 6)]
    assert [(r.status, r.error_code) for r in rows] == [("skipped", MISSED)] * 4 + [("queued", None)]
    assert counts(report, "missed", "started") == {"missed": 4, "started": 1}
    assert again.schedules == 0
    assert dispatch.plans == [rows[-1].id]


def test_a_newest_slot_past_its_starting_deadline_is_missed_not_run(ledger: str, frozen: Any) -> None:
    connection_id = connect(cron="0 2 * * *", at=T0)

    report = tick_at(frozen, T0 + dt.timedelta(days=2, hours=-6), FakeDispatcher())  # slot 02:00 was 2 h ago

    rows = run_rows(connection_id)
    assert [(r.status, r.error_code) for r in rows] == [("skipped", MISSED)] * 2
    assert "starting deadline" in (rows[-1].error or "")
    assert report.started == 0
    with session_scope() as session:
        schedule = session.scalar(select(Schedule))
        assert schedule is not None
        assert schedule.next_slot == dt.datetime(2026, 5, 7, 2, 0, tzinfo=UTC)


# --- enable / disable --------------------------------------------------------------------------------------


def test_a_disabled_connection_never_gets_a_run(ledger: str, frozen: Any) -> None:
    connection_id = connect(enabled=False)

    dispatch = tick_every(frozen, T0, T0 + dt.timedelta(hours=1), 30)

    assert run_rows(connection_id) == [] and dispatch.plans == []


def test_disabling_stops_runs_and_enabling_does_not_catch_up(ledger: str, frozen: Any) -> None:
    connection_id = connect()
    tick_every(frozen, T0, T0 + dt.timedelta(minutes=3), 30)
    with session_scope() as session:
        set_enabled(session, "acme", False, "alice", now=T0 + dt.timedelta(minutes=3, seconds=10))
    tick_every(frozen, T0 + dt.timedelta(minutes=3, seconds=30), T0 + dt.timedelta(minutes=30), 30)
    with session_scope() as session:
        set_enabled(
            session,
            "acme",
            True,
            "alice",
            now=T0 + dt.timedelta(minutes=30, seconds=10),
            without_notices=True,
        )
    tick_every(
        frozen, T0 + dt.timedelta(minutes=30, seconds=20), T0 + dt.timedelta(minutes=32, seconds=20), 30
    )

    slots = [r.scheduled_for for r in run_rows(connection_id)]
    assert slots == [T0 + dt.timedelta(minutes=m) for m in (1, 2, 3, 31, 32)]
    assert {r.status for r in run_rows(connection_id)} <= {"queued", "skipped"}
    with session_scope() as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
        assert verify_chain(session).ok
    assert actions == ["schedule.set", "connection.enable", "connection.disable", "connection.enable"]


def test_enabling_twice_changes_nothing_and_audits_once(ledger: str) -> None:
    connect(enabled=False)
    with session_scope() as session:
        changed = [set_enabled(session, "acme", True, "alice", without_notices=True) for _ in range(2)]
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "connection.enable")))

    assert changed == [True, False]
    assert [(e.actor, e.target, e.before, e.after) for e in events] == [
        ("alice", "connection:acme", {"enabled": False}, {"enabled": True, "without_notices": True})
    ]


# --- connection file, robustness ---------------------------------------------------------------------------


def test_the_connection_files_schedule_is_applied_and_audited(ledger: str) -> None:
    data = make_spec().model_dump(mode="json")
    data["schedule"] = {"cron": "30 2 * * *", "timezone": "Europe/Oslo", "concurrency": "replace"}
    spec = make_spec().model_validate(data)

    with session_scope() as session:
        first = apply_connection(session, spec, "alice")
    with session_scope() as session:
        second = apply_connection(session, spec, "alice")
        set_schedule(session, find_connection(session, "acme"), make_schedule_spec("0 3 * * *", "UTC"), "bob")
    with session_scope() as session:
        third = apply_connection(session, spec, "carol")
        schedule = session.scalar(select(Schedule))
        assert schedule is not None
        stored = (schedule.cron, schedule.timezone, schedule.concurrency_policy)
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))

    assert (first.schedule, second.schedule, third.action, third.schedule) == (
        "created",
        "unchanged",
        "unchanged",
        "updated",
    )
    assert stored == ("30 2 * * *", "Europe/Oslo", "replace")
    assert actions == ["connection.create", "schedule.set", "schedule.set", "schedule.set"]


def test_one_broken_schedule_does_not_stop_the_others(ledger: str, frozen: Any) -> None:
    broken = connect("broken")
    healthy = connect("healthy")
    with session_scope() as session:
        session.execute(update(Schedule).where(Schedule.connection_id == broken).values(cron="not a cron"))

    report = tick_at(frozen, T0 + dt.timedelta(seconds=61))

    assert counts(report, "errors", "started") == {"errors": 1, "started": 1}
    assert run_rows(broken) == [] and len(run_rows(healthy)) == 1
    with session_scope() as session:
        postponed = session.scalar(select(Schedule.next_slot).where(Schedule.connection_id == broken))
    assert postponed == T0 + dt.timedelta(seconds=61) + dt.timedelta(minutes=1)


def test_beat_sends_the_tick_every_30_seconds_to_the_registered_task(ledger: str) -> None:
    from config.celery import celery_config
    from config.settings import get_settings
    from tasks.jobs import tick as tick_task

    entry = celery_config(get_settings())["beat_schedule"]["regsync-tick"]

    assert (entry["task"], entry["schedule"], tick_task.name) == ("regsync.tick", 30.0, "regsync.tick")
    assert tick_task.run() == TickReport().as_dict()  # the task body on an empty ledger
