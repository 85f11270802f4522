"""Issue 12, readable output (acceptance 3): tables at 80 columns never cut an Id or an error code, help reads
well at 80 columns, the demo is quiet and says which Redis it uses, counts use the same words everywhere, and
`schedule set` warns about very frequent schedules."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from typer.testing import CliRunner

from config.logging import configure_logging
from tests.conftest import RegsyncEnv
from tests.connection_files import acme_toml
from worker.cli.main import app
from worker.ledger.db import session_scope
from worker.ledger.models import Connection, RecordFailure, Run

LONG_CODE = "FIELD_CUSTOM_VALIDATION_EXCEPTION"
LONG_MESSAGE = (
    "Billing address must be confirmed by Finance before the registry may change it; ask the Finance team "
    "to confirm the address in the Account's Billing section, then run the backfill again for this record."
)
IDS = ("0015g0000004C9CAAU", "0015g0000004C9dAAE", "0015g0000004CAJAA2")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def cli(cwd: Path, *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": str(columns), "PYTHONIOENCODING": "utf-8", "REGSYNC_ACTOR": "alice"}
    return subprocess.run(
        [sys.executable, "-m", "worker.cli.main", *args],
        capture_output=True, text=True, encoding="utf-8", cwd=cwd, env=environ, timeout=120, check=False,
    )  # fmt: skip


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def failed_run(env: RegsyncEnv) -> Iterator[int]:
    """A failed run with three failures: a long code and a long message, and two shorter ones."""
    with session_scope() as session:
        connection = Connection(name="acme", spec={}, spec_hash="0" * 64)
        session.add(connection)
        session.flush()
        run = Run(connection_id=connection.id, kind="manual", status="failed", triggered_by="test", planned=3)
        session.add(run)
        session.flush()
        for record_id, code in zip(IDS, (LONG_CODE, "ORGNR_INVALID", LONG_CODE), strict=True):
            session.add(
                RecordFailure(
                    run_id=run.id,
                    record_id=record_id,
                    org_number="970 388 649",
                    error_code=code,
                    message=LONG_MESSAGE,
                )
            )
        run_id = run.id
    yield run_id


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_runs_failures_never_cuts_an_id_or_a_code_at_80_and_no_message_at_120(
    failed_run: int, tmp_path: Path
) -> None:
    narrow = cli(tmp_path, "runs", "failures", str(failed_run), columns=80)
    wide = cli(tmp_path, "runs", "failures", str(failed_run), columns=120)

    assert narrow.returncode == 0 and wide.returncode == 0, narrow.stderr + wide.stderr
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80, narrow.stdout
    for output in (narrow.stdout, wide.stdout):
        lines = output.splitlines()
        for record_id in IDS:
            assert any(record_id in line for line in lines), output  # whole, on one line
        assert sum(LONG_CODE in line for line in lines) == 2 and "…" not in output
        assert words(output).count(LONG_MESSAGE) == 3  # wrapped between words, never cut


def help_of_every_command() -> Iterator[tuple[str, str]]:
    runner = CliRunner()
    root = typer.main.get_command(app)

    def walk(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    for path in walk(root, []):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, prog_name="regsync")
        assert result.exit_code == 0, (path, result.output)
        yield " ".join(path), result.output


def test_help_has_no_bool_on_flags_and_no_braces_in_usage() -> None:
    helps = dict(help_of_every_command())

    assert len(helps) > 30 and "enable" in helps and "runs failures" in helps
    for name, text in helps.items():
        assert "<bool>" not in text, name
        assert "{" not in text and "}" not in text, name
        assert max(len(line) for line in text.splitlines()) <= 80, name
    assert "Usage: regsync runs failures [OPTIONS] RUN" in helps["runs failures"]
    assert "Usage: regsync enable [OPTIONS] CONNECTION" in helps["enable"]
    # a later paragraph flows as one sentence, not broken where the docstring's source line ended
    assert "REGISTRY_STATUS_UNKNOWN) is not a failure: the record" in helps["runs failures"]
    assert "--without-notices" in helps["enable"] and "alert channel" in helps["enable"]


def test_a_warning_logged_during_a_live_progress_bar_prints_above_it(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80)
    configure_logging("console", "INFO")  # before the bar, as the CLI does
    try:
        with Progress(TextColumn("run 1"), BarColumn(), console=console, auto_refresh=False) as progress:
            task = progress.add_task("sync", total=10)
            progress.update(task, completed=5)
            progress.refresh()
            logging.getLogger("worker.alerts.evaluator").warning("alert opened kind=run_partially_failed")
            progress.update(task, completed=10)
            progress.refresh()
    finally:
        configure_logging("console", "WARNING")
    lines = [line for line in re.split(r"[\r\n]", ANSI.sub("", screen.getvalue())) if line.strip()]

    warning = [line for line in lines if "alert opened" in line]
    assert warning and all("━" not in line for line in warning), lines
    assert any("━" in line for line in lines)


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_schedule_set_warns_below_five_minutes_and_still_sets_it(env: RegsyncEnv, tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(acme_toml(), encoding="utf-8")
    assert cli(tmp_path, "connection", "apply", "acme.toml").returncode == 0

    often = cli(tmp_path, "schedule", "set", "acme", "*/2 * * * *", "--tz", "UTC")
    burst = cli(tmp_path, "schedule", "set", "acme", "0-3 2 * * *", "--tz", "UTC")
    calm = cli(tmp_path, "schedule", "set", "acme", "*/5 * * * *", "--tz", "UTC")
    shown = json.loads(cli(tmp_path, "schedule", "show", "acme", "--json").stdout)

    assert often.returncode == 0 and "schedule of acme created" in often.stdout
    [warning] = [line for line in often.stderr.splitlines() if "warning" in line]
    assert "every 2 min" in warning and "more often than every 5 min" in warning
    assert burst.returncode == 0 and "every 1 min" in burst.stderr
    assert calm.returncode == 0 and "warning" not in calm.stderr
    assert shown["schedule"]["cron"] == "*/5 * * * *"


def test_demo_is_quiet_private_and_readable_at_80_columns(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REGSYNC_")}
    environ.update(COLUMNS="80", PYTHONIOENCODING="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", "demo", "--dir", str(tmp_path / "demo"), "--accounts", "300",
         "--no-redis"],
        cwd=tmp_path, env=environ, capture_output=True, text=True, encoding="utf-8", timeout=120, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]

    # Noise: neither alembic's nor kombu's lines; the first lines say which broker and Redis it uses.
    assert "alembic" not in output and "kombu" not in output
    head = words("\n".join(done.stdout.splitlines()[:5]))
    assert "Celery on in-process memory transport" in head
    assert (
        "no Redis used: Celery runs in this process (--redis uses the one at redis://127.0.0.1:6379/15)"
        in head
    )

    # The ledger is the owner's alone.
    ledger = tmp_path / "demo" / "ledger.sqlite3"
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o600
    assert stat.S_IMODE(ledger.parent.stat().st_mode) & 0o022 == 0

    # Acceptance 3: every example Id and every code of the failures table is whole, on one line.
    ledger_env = {"REGSYNC_DATABASE_URL": f"sqlite:///{ledger}"}
    failures = demo_cli(tmp_path, ledger_env, "runs", "failures", "1", "--json", "--limit", "1000")
    lines = done.stdout.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("failures by reason")) :]
    codes = {f["error_code"] for f in json.loads(failures)}
    assert LONG_CODE in codes
    for code in codes:
        assert any(line.startswith(code + " ") for line in table), code
    shown_ids = [
        f["record_id"] for f in json.loads(failures) if any(f["record_id"] in line for line in table)
    ]
    assert len(shown_ids) >= len(codes)  # the examples, whole
    assert max(len(line) for line in table[:-6]) <= 80

    # Counts: `runs list`, `runs show` and the demo's summary say failed and invalid apart, with the same numbers.
    view = json.loads(demo_cli(tmp_path, ledger_env, "runs", "show", "1", "--json"))
    listed = demo_cli(tmp_path, ledger_env, "runs", "list", columns="200").splitlines()
    header, row = listed[0].split(), listed[2].split()
    assert header[-8:] == ["planned", "updated", "failed", "invalid", "notices", "out", "of", "scope"]
    cells = dict(zip(("planned", "updated", "failed", "invalid"), row[-6:-2], strict=True))
    assert cells == {k: str(view[k]) for k in ("planned", "updated", "failed", "invalid")}
    shown = demo_cli(tmp_path, ledger_env, "runs", "show", "1")
    for key in ("failed", "invalid", "planned", "updated"):
        assert re.search(rf"^{key} +{view[key]}$", shown, re.M), shown
        assert re.search(rf"^{key} +{view[key]}$", done.stdout, re.M)  # the demo's summary
    notices = sum(
        view[k] for k in ("registry_not_found", "registry_deleted", "registry_inactive", "status_unknown")
    )
    assert re.search(rf"^notices +{notices}$", shown, re.M) and row[-2] == str(notices)


def demo_cli(cwd: Path, extra: dict[str, str], *args: str, columns: str = "80") -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REGSYNC_")}
    environ.update(extra, COLUMNS=columns, PYTHONIOENCODING="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", *args],
        cwd=cwd, env=environ, capture_output=True, text=True, encoding="utf-8", timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done.stdout
