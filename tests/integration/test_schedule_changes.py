"""Changes runs on their own schedule: a connection file's ``[schedule.changes]`` makes hourly changes runs next to
a weekly full reconcile, with a frozen clock on a real (SQLite) ledger, and `regsync schedule set --changes`.

Both schedules can fire at the same instant: the runs' unique (connection, mode, scheduled_for) constraint keeps
them apart, and each schedule's concurrency policy looks only at runs of its own mode.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import select, update
from typer.testing import CliRunner

from tests.connection_files import acme_toml
from tests.integration import test_schedule_tick as _tick
from tests.unit.fakes import FakeDispatcher
from worker.cli.main import app
from worker.connections.apply import apply_connection
from worker.connections.spec import parse_spec
from worker.ledger import runs
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, Run, RunKind, RunMode, RunStatus
from worker.scheduling.models import DEFAULT_GRACE_S, Schedule
from worker.scheduling.policy import OVERLAP
from worker.scheduling.spec import make_schedule_spec
from worker.scheduling.store import find_connection, schedule_view, set_enabled, set_schedule
from worker.scheduling.tick import TickReport, tick

UTC = dt.UTC
#: A Saturday evening: the weekly reconcile's slot (Sunday 02:00 UTC) comes 4 h later, with an hourly slot.
T0 = dt.datetime(2026, 5, 2, 22, 0, tzinfo=UTC)
SUNDAY_2AM = dt.datetime(2026, 5, 3, 2, 0, tzinfo=UTC)

SCHEDULES = """
[schedule]
cron = "0 2 * * 0"
timezone = "UTC"

[schedule.changes]
cron = "0 * * * *"
timezone = "UTC"
grace_s = 600
"""


ledger_template = _tick.ledger_template  # the fixtures: a copy of one migrated SQLite ledger per test
ledger = _tick.ledger
run_rows = _tick.run_rows


@pytest.fixture
def frozen() -> Iterator[Any]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def apply_file(text: str, actor: str = "alice") -> str | None:
    spec = parse_spec(tomllib.loads(text))
    with session_scope() as session:
        return apply_connection(session, spec, actor).schedule


def enable(at: dt.datetime = T0) -> int:
    with session_scope() as session:
        set_enabled(session, "acme", True, "alice", now=at, without_notices=True)
        return find_connection(session, "acme").id


def tick_at(
    traveller: Any, now: dt.datetime, dispatch: FakeDispatcher, *, finish: bool = False
) -> TickReport:
    """Tick at ``now``; with ``finish`` the runs it started end at once (as if workers ran them)."""
    traveller.move_to(now)
    report = tick(dispatch)
    if finish:
        with session_scope() as session:
            session.execute(
                update(Run)
                .where(Run.status == RunStatus.QUEUED.value)
                .values(status=RunStatus.SUCCEEDED.value)
            )
    return report


def by_mode(connection_id: int) -> dict[str, list[dt.datetime | None]]:
    rows = run_rows(connection_id)
    return {mode.value: [r.scheduled_for for r in rows if r.mode == mode.value] for mode in RunMode}


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def test_the_files_changes_table_is_a_second_schedule_of_mode_changes(ledger: str, frozen: Any) -> None:
    first = apply_file(acme_toml(extra=SCHEDULES))
    again = apply_file(acme_toml(extra=SCHEDULES))
    moved = apply_file(acme_toml(extra=SCHEDULES.replace('"0 * * * *"', '"30 * * * *"')), actor="bob")
    with session_scope() as session:
        rows = {r.mode: (r.cron, r.timezone, r.grace_s) for r in session.scalars(select(Schedule))}
        audits = [
            (e.actor, (e.after or {}).get("mode"), (e.after or {})["cron"])
            for e in session.scalars(select(AuditEvent).where(AuditEvent.action == "schedule.set"))
        ]
        view = schedule_view(session, "acme")

    assert (first, again, moved) == ("created", "unchanged", "updated")
    assert rows == {"full": ("0 2 * * 0", "UTC", DEFAULT_GRACE_S), "changes": ("30 * * * *", "UTC", 600)}
    assert audits == [
        ("alice", None, "0 2 * * 0"),
        ("alice", "changes", "0 * * * *"),
        ("bob", "changes", "30 * * * *"),
    ]
    assert view["schedule"]["cron"] == "0 2 * * 0" and view["changes_schedule"]["cron"] == "30 * * * *"


def test_hourly_changes_runs_next_to_a_weekly_full_run_both_in_one_tick(ledger: str, frozen: Any) -> None:
    apply_file(acme_toml(extra=SCHEDULES))
    connection_id = enable()
    dispatch = FakeDispatcher()

    reports = [
        tick_at(frozen, T0 + dt.timedelta(hours=h, seconds=5), dispatch, finish=True) for h in range(1, 6)
    ]

    hourly = [T0 + dt.timedelta(hours=h) for h in range(1, 6)]
    seen = by_mode(connection_id)
    assert [_utc(s) for s in seen["changes"]] == hourly
    assert [_utc(s) for s in seen["full"]] == [SUNDAY_2AM]
    # 02:00 UTC on Sunday: both schedules fire in the same tick, for the same instant, and neither loses.
    assert reports[3].started == 2 and reports[3].lost == 0 and reports[3].errors == 0
    assert sum(r.started for r in reports) == 6 and len(dispatch.plans) == 6
    rows = run_rows(connection_id)
    assert {(r.kind, r.status) for r in rows} == {(RunKind.SCHEDULED.value, RunStatus.SUCCEEDED.value)}

    # A redelivered tick for the same instant records nothing twice (the constraint includes the mode).
    again = tick_at(frozen, T0 + dt.timedelta(hours=5, seconds=6), FakeDispatcher())
    assert again.started == 0 and len(run_rows(connection_id)) == 6


def test_each_mode_forbids_overlap_only_with_runs_of_its_own_mode(ledger: str, frozen: Any) -> None:
    apply_file(acme_toml(extra=SCHEDULES))
    connection_id = enable()
    with session_scope() as session:  # a long full reconcile (manual) is running
        full = runs.create_run(session, connection_id, kind=RunKind.MANUAL, triggered_by="bob")
        full.status = RunStatus.RUNNING.value

    first = tick_at(frozen, T0 + dt.timedelta(hours=1, seconds=5), FakeDispatcher())
    second = tick_at(frozen, T0 + dt.timedelta(hours=2, seconds=5), FakeDispatcher())

    changes = [r for r in run_rows(connection_id) if r.mode == RunMode.CHANGES.value]
    assert first.started == 1, "a running full run does not block the hourly changes run"
    assert second.skipped == 1 and [r.status for r in changes] == ["queued", "skipped"]
    assert changes[1].error_code == OVERLAP and f"run {changes[0].id}" in (changes[1].error or "")


def test_cli_sets_and_shows_the_changes_schedule(ledger: str, frozen: Any, tmp_path: Path) -> None:
    apply_file(acme_toml())
    with session_scope() as session:
        set_schedule(
            session, find_connection(session, "acme"), make_schedule_spec("0 2 * * 0", "UTC"), "alice"
        )
    runner = CliRunner()

    result = runner.invoke(
        app,
        ["schedule", "set", "acme", "15 * * * *", "--tz", "Europe/Oslo", "--changes", "--actor", "carol"],
        env={"COLUMNS": "200"},
    )
    shown = runner.invoke(app, ["schedule", "show", "acme", "--json"])
    text = runner.invoke(app, ["schedule", "show", "acme"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "changes schedule of acme created: '15 * * * *' in Europe/Oslo" in result.output
    with session_scope() as session:
        modes = {r.mode: r.cron for r in session.scalars(select(Schedule))}
    assert modes == {"full": "0 2 * * 0", "changes": "15 * * * *"}
    assert '"changes_schedule"' in shown.output and '"mode": "changes"' in shown.output
    assert "full runs:" in text.output and "changes runs:" in text.output and "'15 * * * *'" in text.output
