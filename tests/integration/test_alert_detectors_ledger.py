"""Issue 5, acceptance 1: with a frozen clock each detector opens exactly one alert for its condition and none
for a healthy history; repeated ticks do not duplicate it; the condition clearing sends one recovery notice."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.integration.alerts_world import (
    FakeChannels,
    add_connection,
    add_run,
    alerts,
    transitions,
    update_run,
)
from worker.alerts.evaluator import VOLUME_ACTION, evaluate
from worker.ledger.audit import verify_chain
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent
from worker.scheduling.models import Schedule

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(minutes=20)
MIN = dt.timedelta(minutes=1)
ALERTS = {
    "notice_period_minutes": 60,
    "channels": {"ops": {"type": "webhook", "url": "https://hooks.example/x"}},
}

Clear = Callable[[], None]
Scenario = Callable[[int], tuple[set[str], Clear]]

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


#: The medians of :func:`healthy_history`, per metric the volume detector compares.
HEALTHY_MEDIAN = {"planned": 100.0, "updated": 5.0}


def healthy_history(connection_id: int) -> None:
    """Four good runs an hour apart, same volume each time."""
    for hours in (4, 3, 2, 1):
        add_run(connection_id, "succeeded", NOW - dt.timedelta(hours=hours), planned=100, updated=5)


def _succeeds_later(connection_id: int) -> Clear:
    def clear() -> None:
        add_run(connection_id, "succeeded", NOW + MIN, planned=100, updated=5)

    return clear


def failed(cid: int) -> tuple[set[str], Clear]:
    add_run(cid, "failed", NOW - 10 * MIN, planned=100, failed=100, updated=5)
    return {"run_failed"}, _succeeds_later(cid)


def partially_failed(cid: int) -> tuple[set[str], Clear]:
    add_run(cid, "partially_failed", NOW - 10 * MIN, planned=100, failed=5, updated=5)
    return {"run_partially_failed"}, _succeeds_later(cid)


def auth_revoked(cid: int) -> tuple[set[str], Clear]:
    add_run(cid, "failed", NOW - 10 * MIN, planned=100, updated=5, error_code="REGISTRY_AUTH")
    return {"auth_revoked", "run_failed"}, _succeeds_later(cid)


def stalled(cid: int) -> tuple[set[str], Clear]:
    run_id = add_run(cid, "running", NOW - 40 * MIN, heartbeat_at=NOW - 35 * MIN)
    return {"run_stalled"}, lambda: update_run(run_id, heartbeat_at=NOW + MIN)


def overran(cid: int) -> tuple[set[str], Clear]:
    run_id = add_run(cid, "running", NOW - dt.timedelta(hours=5), heartbeat_at=NOW - MIN)
    done = {"status": "succeeded", "finished_at": NOW + MIN, "planned": 100, "updated": 5}
    return {"run_overran"}, lambda: update_run(run_id, **done)


def volume_planned(cid: int) -> tuple[set[str], Clear]:
    add_run(cid, "succeeded", NOW - 10 * MIN, planned=400, updated=5)  # four times the records, same updates
    return {"volume_anomaly"}, _succeeds_later(cid)


def volume_updated(cid: int) -> tuple[set[str], Clear]:
    add_run(cid, "succeeded", NOW - 10 * MIN, planned=100, updated=80)  # same records, 16 times the updates
    return {"volume_anomaly"}, _succeeds_later(cid)


def budget(cid: int) -> tuple[set[str], Clear]:
    run_id = add_run(cid, "paused_budget", NOW - 20 * MIN)
    done = {"status": "succeeded", "finished_at": NOW + MIN, "planned": 100, "updated": 5}
    return {"api_budget_low"}, lambda: update_run(run_id, **done)


def add_hourly_schedule(connection_id: int, next_slot: dt.datetime) -> None:
    with session_scope() as session:
        session.add(
            Schedule(
                connection_id=connection_id,
                cron="0 * * * *",
                timezone="UTC",
                grace_s=900,
                last_slot=next_slot - dt.timedelta(hours=1),
                next_slot=next_slot,
                created_at=NOW - dt.timedelta(days=1),
            )
        )


def _served_slot(connection_id: int, slot: dt.datetime) -> None:
    add_run(
        connection_id,
        "succeeded",
        slot + 2 * MIN,
        kind="scheduled",
        scheduled_for=slot,
        planned=100,
        updated=5,
    )


def missed(cid: int) -> tuple[set[str], Clear]:
    _served_slot(cid, NOW - dt.timedelta(hours=2))
    add_hourly_schedule(cid, next_slot=NOW - dt.timedelta(hours=1))  # 09:00 never handled: beat was down

    def clear() -> None:
        _served_slot(cid, NOW)
        with session_scope() as session:
            row = session.query(Schedule).one()
            row.last_slot, row.next_slot = NOW, NOW + dt.timedelta(hours=1)

    return {"run_missed"}, clear


#: Scenario id → what it sets up; the id is the alert kind, with ``:subject`` where a kind has several.
SCENARIOS: dict[str, Scenario] = {
    "run_failed": failed,
    "run_partially_failed": partially_failed,
    "run_missed": missed,
    "run_stalled": stalled,
    "run_overran": overran,
    "volume_anomaly:planned": volume_planned,
    "volume_anomaly:updated": volume_updated,
    "auth_revoked": auth_revoked,
    "api_budget_low": budget,
}


def tick(at: dt.datetime, channels: FakeChannels) -> None:
    with time_machine.travel(at, tick=False):
        evaluate(at, channels=channels, sinks=[])


def test_a_healthy_history_opens_no_alert(env: RegsyncEnv) -> None:
    cid = add_connection(alerts=ALERTS, enabled=True)
    healthy_history(cid)
    add_run(cid, "running", NOW - 10 * MIN, heartbeat_at=NOW - MIN)
    _served_slot(cid, NOW - dt.timedelta(hours=1))
    add_hourly_schedule(cid, next_slot=NOW + dt.timedelta(hours=1))
    channels = FakeChannels()

    for at in (NOW, NOW + MIN, LATER):
        tick(at, channels)

    assert alerts() == []
    assert channels.sent("ops") == []


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_each_detector_opens_one_alert_and_one_recovery_notice(env: RegsyncEnv, scenario: str) -> None:
    kind, _, subject = scenario.partition(":")
    cid = add_connection(alerts=ALERTS, enabled=True)
    healthy_history(cid)
    expected, clear = SCENARIOS[scenario](cid)
    channels = FakeChannels()

    for at in (NOW, NOW, NOW + MIN):  # repeated ticks, one of them at the very same instant
        tick(at, channels)

    opened = alerts()
    assert Counter(a.kind for a in opened) == Counter(expected)
    assert all(a.status == "notified" and a.detected_at <= a.opened_at == NOW for a in opened)
    assert all(a.notify_by == a.detected_at + dt.timedelta(minutes=60) for a in opened)
    assert sorted(channels.kinds("ops")) == sorted(("alert", k) for k in expected)
    if subject:  # the one metric that deviated, and only that one
        (alert,) = [a for a in opened if a.kind == kind]
        details = (alert.subject, alert.details["metric"], alert.details["median"])
        assert details == (subject, subject, HEALTHY_MEDIAN[subject])

    clear()
    tick(LATER, channels)
    tick(LATER + MIN, channels)

    after = alerts()
    assert [a.status for a in after] == ["resolved"] * len(expected)
    recoveries = [k for n, k in channels.kinds("ops") if n == "recovery"]
    assert sorted(recoveries) == sorted(expected)
    mine = next(a for a in after if a.kind == kind)
    assert [t[:3] for t in transitions(mine.id)] == [
        ("opened", None, "open"),
        ("notified", "open", "notified"),
        ("resolved", "notified", "resolved"),
    ]


def test_detected_at_comes_from_the_ledger_and_is_never_in_the_future(env: RegsyncEnv) -> None:
    cid = add_connection(alerts=ALERTS)
    stalled_since = NOW - 35 * MIN
    add_run(cid, "running", NOW - 40 * MIN, heartbeat_at=stalled_since)
    add_run(cid, "failed", NOW + dt.timedelta(hours=2), planned=1, failed=1)  # a clock running ahead
    channels = FakeChannels()

    tick(NOW, channels)

    by_kind: dict[str, Any] = {a.kind: a for a in alerts()}
    assert by_kind["run_stalled"].detected_at == stalled_since + dt.timedelta(minutes=30)
    assert by_kind["run_failed"].detected_at == NOW  # clamped, not two hours ahead


def _audited(action: str) -> list[AuditEvent]:
    with session_scope() as session:
        assert verify_chain(session).ok
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_a_volume_anomaly_leaves_one_audit_event_with_counts_only(env: RegsyncEnv) -> None:
    cid = add_connection(alerts=ALERTS, enabled=True)
    healthy_history(cid)
    run_id = add_run(cid, "succeeded", NOW - 10 * MIN, planned=100, updated=80, failed=2)
    channels = FakeChannels()

    for at in (NOW, NOW, NOW + MIN):  # repeated ticks open the alert, and audit it, once
        tick(at, channels)

    (event,) = _audited(VOLUME_ACTION)
    assert (event.actor, event.target) == ("regsync", f"connection:acme/run:{run_id}")
    assert event.after == {
        "run_id": run_id,
        "metric": "updated",
        "value": 80,
        "median": HEALTHY_MEDIAN["updated"],
        "history": 4,
        "planned": 100,
        "updated": 80,
        "failed": 2,
    }


def test_an_alert_of_another_kind_leaves_no_volume_audit_event(env: RegsyncEnv) -> None:
    cid = add_connection(alerts=ALERTS, enabled=True)
    healthy_history(cid)
    failed(cid)

    tick(NOW, FakeChannels())

    assert [a.kind for a in alerts()] == ["run_failed"]
    assert _audited(VOLUME_ACTION) == []
