"""The SIEM feed (one line per alert transition and per audit event, exactly once across passes), concurrent
evaluators (one alert per condition under a real race on PostgreSQL), one bad connection not stopping the pass,
and notice settings (admin only, audited, 72 h at most)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tests.conftest import RegsyncEnv
from tests.connection_files import acme_toml
from tests.integration.alerts_world import (
    ALERTS_ONE_CHANNEL,
    FakeChannels,
    add_connection,
    add_run,
    alerts,
)
from worker.alerts.access import FAILED_AUTH_BURST, failed_auth_burst
from worker.alerts.config import AlertsSpec
from worker.alerts.evaluator import evaluate
from worker.alerts.models import INSTALLATION, AlertTransition
from worker.alerts.notice_settings import set_alert_settings
from worker.alerts.siem import FileSink
from worker.cli.main import app
from worker.errors import NoticeSettingsRefused
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)


def tick(at: dt.datetime, channels: Any, sinks: list[Any] | None = None) -> None:
    with time_machine.travel(at, tick=False):
        evaluate(at, channels=channels, sinks=sinks or [])


def count(model: type[Any]) -> int:
    with session_scope() as session:
        return len(list(session.scalars(select(model))))


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_siem_file_gets_each_transition_and_audit_event_exactly_once(env: RegsyncEnv, tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "siem.jsonl")
    cid = add_connection(alerts=ALERTS_ONE_CHANNEL)
    add_run(cid, "failed", NOW - MIN, planned=5, failed=5)
    channels = FakeChannels()

    for minutes in (0, 1, 2):
        tick(NOW + minutes * MIN, channels, [sink])
    add_run(cid, "succeeded", NOW + 3 * MIN, planned=5, updated=5)
    tick(NOW + 4 * MIN, channels, [sink])
    tick(NOW + 5 * MIN, channels, [sink])

    events = [json.loads(line) for line in sink.path.read_text().splitlines()]
    transitions = [e for e in events if e["type"] == "alert_transition"]
    audits = [e for e in events if e["type"] == "audit_event"]
    assert [e["event"] for e in transitions] == ["opened", "notified", "resolved"]
    assert len(transitions) == count(AlertTransition) and len(audits) == count(AuditEvent) == 1
    assert (
        audits[0]["action"] == "connection.create" and "before" not in audits[0] and "after" not in audits[0]
    )
    assert transitions[0]["kind"] == "run_failed" and transitions[0]["connection"] == "acme"


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_concurrent_evaluators_open_one_alert_and_send_one_notice(env: RegsyncEnv) -> None:
    cid = add_connection(alerts=ALERTS_ONE_CHANNEL)
    add_run(cid, "failed", NOW - MIN, planned=5, failed=5)
    channels, start, errors = FakeChannels(), threading.Barrier(4), []

    def evaluator() -> None:
        start.wait()
        try:
            evaluate(NOW, channels=channels, sinks=[])
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=evaluator) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert [a.kind for a in alerts()] == ["run_failed"]
    assert channels.kinds("ops") == [("alert", "run_failed")]


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_one_connection_failing_does_not_stop_the_others(env: RegsyncEnv) -> None:
    broken, fine = add_connection("broken", ALERTS_ONE_CHANNEL), add_connection("fine", ALERTS_ONE_CHANNEL)
    for cid in (broken, fine):
        add_run(cid, "failed", NOW - MIN, planned=5, failed=5)
    fakes = FakeChannels()

    def channels(session: Session, connection_id: int, settings: AlertsSpec) -> dict[str, Any]:
        if connection_id == broken:
            raise RuntimeError("secret store unreadable")
        return fakes(session, connection_id, settings)

    tick(NOW, channels)

    by_connection = {a.connection_id: a for a in alerts()}
    assert by_connection[fine].status == "notified"
    assert by_connection[broken].status == "open"
    retry_at = by_connection[broken].retry_at
    assert retry_at is not None and retry_at > NOW + MIN
    assert "RuntimeError" in (by_connection[broken].last_error or "")


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_notice_settings_are_admin_only_audited_and_at_most_72_hours(env: RegsyncEnv) -> None:
    cid = add_connection(alerts=ALERTS_ONE_CHANNEL)

    with session_scope() as session, pytest.raises(NoticeSettingsRefused, match="only admins"):
        set_alert_settings(session, "acme", {"notice_period_minutes": 30}, actor="op", role="operator")
    with session_scope() as session, pytest.raises(NoticeSettingsRefused, match="at most 4320"):
        set_alert_settings(session, "acme", {"notice_period_minutes": 73 * 60}, actor="root", role="admin")
    with session_scope() as session:
        after = set_alert_settings(session, "acme", {"notice_period_minutes": 30}, actor="root")

    assert after["notice_period_minutes"] == 30
    with session_scope() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "alerts.settings")))
        assert len(events) == 1
        assert events[0].actor == "root"
        assert (events[0].before or {})["notice_period_minutes"] == 60
        assert (events[0].after or {})["notice_period_minutes"] == 30
    add_run(cid, "failed", NOW - MIN, planned=5, failed=5)
    tick(NOW, FakeChannels())
    (alert,) = alerts()
    assert alert.notify_by - alert.detected_at == dt.timedelta(minutes=30)


LONG_NOTICE_TOML = acme_toml(extra="[alerts]\nnotice_period_minutes = 4321")


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_cli_refuses_a_notice_period_above_72_hours_from_file_and_command(
    env: RegsyncEnv, tmp_path: Path
) -> None:
    add_connection(alerts=ALERTS_ONE_CHANNEL)
    (tmp_path / "long.toml").write_text(LONG_NOTICE_TOML, encoding="utf-8")
    runner = CliRunner()

    from_file = runner.invoke(
        app, ["connection", "apply", str(tmp_path / "long.toml"), "--skip-describe", "--actor", "root"]
    )
    from_command = runner.invoke(
        app, ["alerts", "settings", "acme", "--notice-period-minutes", "4321", "--actor", "root"]
    )
    allowed = runner.invoke(
        app, ["alerts", "settings", "acme", "--notice-period-minutes", "4320", "--actor", "root"]
    )

    assert from_file.exit_code == 2 and "refused" in from_file.output
    assert from_command.exit_code == 2 and "at most 4320" in from_command.output
    assert allowed.exit_code == 0, allowed.output
    with session_scope() as session:
        actions = [(e.actor, e.action) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions == [("test", "connection.create"), ("root", "alerts.settings")]


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_siem_file_gets_installation_wide_alerts_too(env: RegsyncEnv, tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "siem.jsonl")
    with time_machine.travel(NOW, tick=False):
        failed_auth_burst("203.0.113.7", FAILED_AUTH_BURST, NOW)

    tick(NOW + MIN, FakeChannels(), [sink])

    events = [json.loads(line) for line in sink.path.read_text().splitlines()]
    transitions = [e for e in events if e["type"] == "alert_transition"]
    assert [(e["kind"], e["connection"], e["event"]) for e in transitions][:1] == [
        ("access_anomaly", INSTALLATION, "opened")
    ]
    assert len(transitions) == count(AlertTransition) >= 1
