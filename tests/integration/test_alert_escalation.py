"""Issue 5, acceptance 3: an alert not acknowledged within step 1's timeout is escalated to step 2;
acknowledging stops escalation. Frozen clock, fake channels, real ledger."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.integration.alerts_world import (
    TWO_STEP_ALERTS,
    FakeChannels,
    add_connection,
    add_run,
    alerts,
    transitions,
)
from worker.alerts.evaluator import evaluate
from worker.alerts.queries import ack_alert
from worker.errors import StateConflict
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)


def tick(at: dt.datetime, channels: FakeChannels) -> None:
    with time_machine.travel(at, tick=False):
        evaluate(at, channels=channels, sinks=[])


def failing_connection(**alerts: object) -> int:
    cid = add_connection(alerts={**TWO_STEP_ALERTS, **alerts})
    add_run(cid, "failed", NOW - MIN, planned=10, failed=10)
    return cid


@pytest.mark.parametrize("ledger_url", ["sqlite", "postgresql"], indirect=True)
def test_unacknowledged_alert_escalates_to_step_two_after_step_one_timeout(env: RegsyncEnv) -> None:
    failing_connection()
    channels = FakeChannels()

    tick(NOW, channels)
    (alert,) = alerts()
    assert (alert.status, alert.escalation_level, alert.escalate_at) == ("notified", 0, NOW + 10 * MIN)
    assert channels.kinds("ops") == [("alert", "run_failed")]
    assert channels.sent("boss") == []

    tick(NOW + 9 * MIN, channels)
    assert channels.sent("boss") == []

    tick(NOW + 10 * MIN, channels)
    tick(NOW + 10 * MIN, channels)  # a second evaluator at the same instant escalates nothing more
    (alert,) = alerts()
    assert (alert.escalation_level, alert.escalate_at) == (1, None)  # last step, no repeat: stays here
    assert channels.kinds("boss") == [("escalation", "run_failed")]
    assert channels.sent("boss")[0].payload["alert"]["escalation_level"] == 1

    tick(NOW + 3 * 60 * MIN, channels)
    assert len(channels.sent("ops")) == 1 and len(channels.sent("boss")) == 1
    assert [t[0] for t in transitions(alert.id)] == ["opened", "notified", "escalated"]


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_acknowledging_stops_escalation_and_is_audited(env: RegsyncEnv) -> None:
    failing_connection(repeat=2)
    channels = FakeChannels()
    tick(NOW, channels)
    (alert,) = alerts()

    with session_scope() as session:
        view = ack_alert(session, alert.id, "oncall@example.com", NOW + 5 * MIN)
    for minutes in (10, 30, 60, 600):
        tick(NOW + minutes * MIN, channels)

    assert view["status"] == "acknowledged" and view["acknowledged_by"] == "oncall@example.com"
    (alert,) = alerts()
    assert (alert.status, alert.escalation_level, alert.escalate_at) == ("acknowledged", 0, None)
    assert channels.sent("boss") == [] and len(channels.sent("ops")) == 1
    assert [t[:3] for t in transitions(alert.id)][-1] == ("acknowledged", "notified", "acknowledged")
    with session_scope() as session:
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "alert.ack")).one()
        assert (audit.actor, audit.target) == ("oncall@example.com", f"connection:acme/alert:{alert.id}")
        with pytest.raises(StateConflict):
            ack_alert(session, alert.id, "someone-else", NOW + 6 * MIN)


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_the_policy_repeats_from_step_one(env: RegsyncEnv) -> None:
    failing_connection(repeat=1)
    channels = FakeChannels()

    for minutes in (0, 10, 30, 40, 60, 120):  # step 1, step 2 (+10), step 1 again (+20), step 2 (+10), end
        tick(NOW + minutes * MIN, channels)

    (alert,) = alerts()
    assert alert.escalation_level == 3 and alert.escalate_at is None
    assert [k for k, _ in channels.kinds("ops")] == ["alert", "escalation"]
    assert [k for k, _ in channels.kinds("boss")] == ["escalation", "escalation"]


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_permanently_failing_channel_opens_channel_failing_and_recovers(env: RegsyncEnv) -> None:
    failing_connection()
    channels = FakeChannels()
    channels.channel("ops").fail = "permanent"

    tick(NOW, channels)
    kinds = {a.kind: a for a in alerts()}
    assert kinds["run_failed"].status == "open" and "HTTP 410" in (kinds["run_failed"].last_error or "")
    assert kinds["channel_failing"].subject == "ops"

    tick(NOW + MIN, channels)  # channel_failing is told through the other channel, not the failing one
    assert channels.kinds("boss") == [("alert", "channel_failing")]

    channels.channel("ops").fail = None
    tick(NOW + 10 * MIN, channels)  # the run_failed notice is retried after its backoff and gets through
    kinds = {a.kind: a for a in alerts()}
    assert kinds["run_failed"].status == "notified"
    assert kinds["channel_failing"].status == "resolved"
