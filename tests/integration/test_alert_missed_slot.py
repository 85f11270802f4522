"""Issue 5, acceptance 4: beat stops for longer than the grace; on restart a ``run_missed`` alert is opened for
the missed slot. The real beat tick (worker.scheduling.tick) and evaluator, driven by a frozen clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
import time_machine
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.integration.alerts_world import ALERTS_ONE_CHANNEL, FakeChannels, add_connection, alerts
from worker.alerts.evaluator import evaluate
from worker.ledger.db import session_scope
from worker.ledger.models import Run
from worker.scheduling.spec import make_schedule_spec
from worker.scheduling.store import find_connection, set_enabled, set_schedule
from worker.scheduling.tick import tick

T0 = dt.datetime(2026, 3, 2, 8, 30, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite", "postgresql"], indirect=True)


class Dispatch:
    """Records plan requests; the test plays the worker by starting runs itself."""

    def __init__(self) -> None:
        self.planned: list[int] = []

    def plan(self, run_id: int) -> None:
        self.planned.append(run_id)

    def sync(self, chunk_ids: Sequence[int]) -> None:
        return None

    def run_closed(self, run_id: int) -> None:
        return None


def at(moment: dt.datetime) -> time_machine.travel:
    return time_machine.travel(moment, tick=False)


def beat(moment: dt.datetime, dispatch: Dispatch) -> None:
    with at(moment):
        tick(dispatch, now=moment)


def alert_pass(moment: dt.datetime, channels: FakeChannels) -> None:
    with at(moment):
        evaluate(moment, channels=channels, sinks=[])


def start_slot_run(slot: dt.datetime, started: dt.datetime) -> None:
    """A worker picks up the slot's run and finishes it fine."""
    with session_scope() as session:
        run = session.scalars(select(Run).where(Run.scheduled_for == slot)).one()
        run.status, run.started_at, run.heartbeat_at = "succeeded", started, started
        run.finished_at = started + MIN


def hourly_connection() -> None:
    add_connection(alerts=ALERTS_ONE_CHANNEL)
    with at(T0), session_scope() as session:
        spec = make_schedule_spec("0 * * * *", "UTC", grace_s=900)
        set_schedule(session, find_connection(session, "acme"), spec, "admin", now=T0)
        set_enabled(session, "acme", True, "admin", now=T0)


def test_missed_slot_opens_alert_after_grace_when_beat_restarts(env: RegsyncEnv) -> None:
    hourly_connection()
    dispatch, channels = Dispatch(), FakeChannels()
    nine, ten, eleven = (T0.replace(hour=h, minute=0) for h in (9, 10, 11))

    beat(nine + dt.timedelta(seconds=10), dispatch)  # beat alive: the 09:00 slot runs on time
    start_slot_run(nine, nine + MIN)
    alert_pass(nine + 20 * MIN, channels)
    assert alerts() == []

    # beat is stopped from 09:30 to 10:20: the 10:00 slot passes unhandled, 20 min > 15 min grace
    restart = ten + 20 * MIN
    alert_pass(ten + 14 * MIN, channels)  # (alerts still evaluate after runs) within the grace: nothing yet
    assert alerts() == []
    alert_pass(restart, channels)
    beat(restart, dispatch)  # beat is back: it starts the 10:00 slot late
    alert_pass(restart, channels)
    alert_pass(restart + MIN, channels)

    (missed,) = alerts()
    assert (missed.kind, missed.status) == ("run_missed", "notified")
    assert missed.details["slot"] == ten.isoformat()
    assert missed.detected_at == ten + 15 * MIN and missed.opened_at == restart
    assert channels.kinds("ops") == [("alert", "run_missed")]

    start_slot_run(ten, restart + 2 * MIN)  # started, but 22 min late: still missed
    alert_pass(restart + 5 * MIN, channels)
    assert alerts()[0].status == "notified"

    beat(eleven + dt.timedelta(seconds=5), dispatch)  # the next slot runs on time: the condition clears
    start_slot_run(eleven, eleven + MIN)
    alert_pass(eleven + 16 * MIN, channels)
    (missed,) = alerts()
    assert missed.status == "resolved"
    assert [k for k, _ in channels.kinds("ops")] == ["alert", "recovery"]
