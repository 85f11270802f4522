"""`regsync run --changes`, `runs list` and `runs show` for changes runs, on a real ledger (SQLite and PostgreSQL).

The planning task is caught by a fake dispatcher (no worker): these tests show what the CLI creates and prints.
test_changes_surfaces_sandbox.py runs `run --changes --wait` end to end with workers.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import RegsyncEnv
from tests.connection_files import acme_toml
from tests.unit.fakes import FakeDispatcher
from worker.cli.main import app
from worker.connections.apply import apply_connection
from worker.connections.secrets import set_secret
from worker.connections.spec import parse_spec
from worker.ledger.db import session_scope
from worker.ledger.models import Run, RunStatus, utcnow


@pytest.fixture
def dispatch(env: RegsyncEnv, monkeypatch: pytest.MonkeyPatch) -> FakeDispatcher:
    with session_scope() as session:
        apply_connection(session, parse_spec(tomllib.loads(acme_toml())), "alice")
    with session_scope() as session:
        for name in ("salesforce_client_secret", "registry_token"):
            set_secret(session, "acme", name, "s3cret-value-123", "alice")
    fake = FakeDispatcher()
    monkeypatch.setattr("worker.cli.runs.CeleryDispatcher", lambda: fake)
    return fake


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def test_run_changes_queues_a_changes_run_and_plain_run_a_full_one(dispatch: FakeDispatcher) -> None:
    changes = cli("run", "acme", "--changes", "--json", "--actor", "alice")
    full = cli("run", "acme", "--actor", "alice")

    assert changes.exit_code == 0, changes.output
    view = json.loads(changes.output)
    assert (view["mode"], view["status"], view["kind"], view["triggered_by"]) == (
        "changes",
        "queued",
        "manual",
        "alice",
    )
    assert full.exit_code == 0 and "full run" in full.output and "queued for acme" in full.output
    with session_scope() as session:
        modes = [(run.id, run.mode) for run in session.query(Run).order_by(Run.id)]
    assert [mode for _, mode in modes] == ["changes", "full"]
    assert dispatch.plans == [run_id for run_id, _ in modes]


def test_runs_list_shows_the_mode_and_runs_show_the_change_counts(dispatch: FakeDispatcher) -> None:
    cli("run", "acme", "--actor", "alice")
    view = json.loads(cli("run", "acme", "--changes", "--json", "--actor", "alice").output)
    with session_scope() as session:
        run = session.get_one(Run, view["id"])
        run.status, run.started_at, run.finished_at = RunStatus.SUCCEEDED.value, utcnow(), utcnow()
        run.feed_pages, run.changes_seen, run.changes_matched, run.changes_unmapped = 3, 2417, 312, 40
        run.planned, run.fetched, run.updated, run.unchanged, run.review = 290, 270, 201, 89, 4

    listed = cli("runs", "list")
    shown = cli("runs", "show", str(view["id"]))
    as_json = json.loads(cli("runs", "show", str(view["id"]), "--json").output)

    rows = [line.split() for line in listed.output.splitlines() if line.strip().startswith(("1 ", "2 "))]
    assert sorted(row[3] for row in rows) == ["changes", "full"], listed.output
    assert shown.exit_code == 0, shown.output
    assert f"changes run {view['id']} of acme: succeeded" in shown.output
    for label, value in (
        ("feed pages read", 3),
        ("changes seen", 2417),
        ("changes matched", 312),
        ("changes skipped (no mapped path)", 40),
        ("updated", 201),
        ("review", 4),
    ):
        assert any(line.split() == [*label.split(), str(value)] for line in shown.output.splitlines()), label
    assert {
        k: as_json[k] for k in ("mode", "feed_pages", "changes_seen", "changes_matched", "changes_unmapped")
    } == {
        "mode": "changes",
        "feed_pages": 3,
        "changes_seen": 2417,
        "changes_matched": 312,
        "changes_unmapped": 40,
    }


def test_a_full_runs_summary_has_no_change_rows(dispatch: FakeDispatcher) -> None:
    view = json.loads(cli("run", "acme", "--json", "--actor", "alice").output)

    shown = cli("runs", "show", str(view["id"]))

    assert f"full run {view['id']} of acme: queued" in shown.output
    assert "feed pages read" not in shown.output and "changes seen" not in shown.output
