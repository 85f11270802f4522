"""`regsync run` and `regsync runs …`: start a run, watch it, list runs, show one, list its failures."""

from __future__ import annotations

import getpass
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from config.logging import redact
from worker.cli.common import EXIT_FAILED, EXIT_OK, console, err_console, handles_errors, print_json
from worker.cli.previews import print_field_changes
from worker.cli.tables import print_table, print_table_with_notes
from worker.connections.preflight import require_secrets
from worker.errors import LedgerUnavailable
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger.counters import CALLS, COUNTERS
from worker.ledger.db import session_scope
from worker.ledger.models import RunMode, RunStatus
from worker.ledger.views import CHANGE_COUNTS, list_failures, list_runs, records_done, show_run
from worker.registry.outcomes import RegistryNotice
from worker.sync.runner import start_run, wait_for
from worker.text_input import check_db_id, refuse_control

runs_app = typer.Typer(no_args_is_help=True, help="List runs, show one, list its failures.")


def exit_code_for(status: str) -> int:
    """0 succeeded, 1 failed / partially failed / cancelled; a run still going counts as success so far."""
    return (
        EXIT_OK
        if status in (RunStatus.SUCCEEDED.value, RunStatus.QUEUED.value, RunStatus.RUNNING.value)
        else EXIT_FAILED
    )


@handles_errors
def run_command(
    connection: str = typer.Argument(..., help="Connection name."),
    wait: bool = typer.Option(
        False, "--wait", help="Show a progress bar until the run ends, then the summary."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run as JSON."),
    actor: str | None = typer.Option(None, "--actor", envvar="REGSYNC_ACTOR", help="Who starts the run."),
    changes: bool = typer.Option(
        False,
        "--changes",
        help="A changes run: only what changed in the CRM and in the registry's change feed since the last one.",
    ),
) -> None:
    """Start a manual run of CONNECTION now (a full run unless --changes)."""
    if actor is not None:
        refuse_control(actor, "actor (--actor / REGSYNC_ACTOR)")
    with session_scope() as session:
        require_secrets(session, connection)  # a run without them could never start
    mode = RunMode.CHANGES if changes else RunMode.FULL
    who = actor or f"cli:{getpass.getuser()}"
    run_id = start_run(connection, CeleryDispatcher(), triggered_by=who, mode=mode)
    if not wait:
        with session_scope() as session:
            view = show_run(session, run_id)
        print_json(view) if as_json else console.print(f"{mode.value} run {run_id} queued for {connection}")
        return
    view = watch(run_id, quiet=as_json)
    print_json(view) if as_json else print_summary(view)
    raise typer.Exit(exit_code_for(view["status"]))


def watch(run_id: int, *, quiet: bool = False) -> dict[str, Any]:
    """Wait for a run with a rich progress bar over its records."""
    columns = (
        TextColumn("[bold]run {task.fields[run]}[/] {task.fields[status]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False, disable=quiet) as progress:
        task = progress.add_task("sync", total=None, run=run_id, status=RunStatus.QUEUED.value)

        def update(view: dict[str, Any]) -> None:
            total = view["planned"] or None
            progress.update(task, completed=records_done(view), total=total, status=view["status"])

        def outage(exc: LedgerUnavailable) -> None:
            err_console.print(
                f"{redact(exc.message)}; waiting for it to answer", markup=False, highlight=False
            )

        return wait_for(run_id, update, on_outage=outage)


#: Registry outcome counters: records also counted in their fate, listed by `runs failures --code`.
NOTICE_KEYS = tuple(notice.counter for notice in RegistryNotice)
#: Counted in fields, not records: shown after the records' fates and the registry's notices.
_FIELD_COUNTS = ("protected", "review")
#: The summary's counts: planned, each record fate and the registry's notices (the counters in their order),
#: fields kept, records not processed, then the calls.
SUMMARY_KEYS = (
    "planned",
    "invalid",
    *(key for key in COUNTERS if key not in _FIELD_COUNTS + CALLS),
    *_FIELD_COUNTS,
    "not_processed",
    *CALLS,
)


#: A changes run's own counts, in the words of its summary (shown before the records' counts).
CHANGE_LABELS = {
    "feed_pages": "feed pages read",
    "changes_seen": "changes seen",
    "changes_matched": "changes matched",
    "changes_unmapped": "changes skipped (no mapped path)",
}


def summary_rows(view: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary's (label, count) rows, in the words `runs list` uses; the registry's notices are totalled
    under ``notices`` (the list's column), each kind indented under it. A changes run starts with its feed
    counts (pages read, changes seen, matched, skipped as unmapped)."""
    label = {"updated": "would update"} if view.get("dry_run") else {}
    rows: list[tuple[str, str]] = []
    if view.get("mode") == RunMode.CHANGES.value:
        rows.extend((CHANGE_LABELS[key], str(view[key])) for key in CHANGE_COUNTS)
    for key in SUMMARY_KEYS:
        if key == NOTICE_KEYS[0]:
            rows.append(("notices", str(sum(view[k] for k in NOTICE_KEYS))))
        indent = "  " if key in NOTICE_KEYS else ""
        rows.append((indent + label.get(key, key.replace("_", " ")), str(view[key])))
    return rows


def print_summary(view: dict[str, Any]) -> None:
    colours = {
        RunStatus.SUCCEEDED: "green",
        RunStatus.PARTIALLY_FAILED: "yellow",
        RunStatus.PAUSED_BUDGET: "yellow",
    }
    colour = colours.get(view["status"], "red")
    console.print(
        f"{view.get('mode', RunMode.FULL.value)} run {view['id']} of {view['connection']}: "
        f"[bold {colour}]{view['status']}[/] "
        f"in {view['duration_s']} s"
    )
    print_table(console, ("count", "value"), summary_rows(view), right=("value",))
    if view.get("field_changes") is not None:
        print_field_changes(view["field_changes"])
    if view["api_used_after"] is not None:
        console.print(
            f"Salesforce API usage: {view['api_used_before']} → {view['api_used_after']} "
            f"of {view['api_limit']} per day"
        )
    if view["status"] == RunStatus.PAUSED_BUDGET.value:
        console.print(f"[yellow]paused:[/] {view['error']}", highlight=False)
    elif view["error"]:
        console.print(f"[red]{view['error_code']}:[/] {view['error']}", highlight=False)


@runs_app.command("list")
@handles_errors
def list_command(
    connection: str | None = typer.Option(None, "--connection", "-c", help="Only this connection's runs."),
    limit: int = typer.Option(20, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The newest runs first."""
    with session_scope() as session:
        views = list_runs(session, connection, limit)
    if as_json:
        print_json(views)
        return
    counts = ("planned", "updated", "failed", "invalid", "notices", "out of scope")
    headers = ("id", "connection", "kind", "mode", "status", "queued", "duration s", *counts)
    rows = (
        (
            str(v["id"]),
            v["connection"],
            v["kind"],
            v["mode"],
            v["status"],
            str(v["queued_at"])[:19],
            str(v["duration_s"]),
            str(v["planned"]),
            str(v["updated"]),
            str(v["failed"]),
            str(v["invalid"]),
            str(sum(v[key] for key in NOTICE_KEYS)),
            str(v["out_of_scope"]),
        )
        for v in views
    )
    print_table(console, headers, rows, right=("id", "duration s", *counts))


@runs_app.command("show")
@handles_errors
def show_command(
    run_id: int = typer.Argument(..., metavar="RUN"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One run: status, times and counts. Exit code 0 succeeded, 1 failed or partially failed, 2 no such run."""
    check_db_id(run_id, "run")
    with session_scope() as session:
        view = show_run(session, run_id)
    print_json(view) if as_json else print_summary(view)
    raise typer.Exit(exit_code_for(view["status"]))


@runs_app.command("failures")
@handles_errors
def failures_command(
    run_id: int = typer.Argument(..., metavar="RUN"),
    codes: list[str] = typer.Option(
        [],
        "--code",
        metavar="CODE",
        help="Only rows with this code, e.g. REGISTRY_DELETED (repeat for several).",
    ),
    limit: int = typer.Option(100, "--limit", min=1, max=100_000),
    offset: int = typer.Option(0, "--offset", min=0),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The records of a run that could not be synced, with the reason, and the registry's notices.

    A notice (REGISTRY_NOT_FOUND, REGISTRY_DELETED, REGISTRY_INACTIVE, REGISTRY_STATUS_UNKNOWN) is not a
    failure: the record was synced where mapped, and it is not counted in `failed`.
    """
    check_db_id(run_id, "run")
    with session_scope() as session:
        rows = list_failures(session, run_id, limit, offset, codes)
    if as_json:
        print_json(rows)
        return
    print_table_with_notes(
        console,
        ("record", "org number", "kind", "code"),
        [
            (r["record_id"], r["org_number"] or "", "notice" if r["notice"] else "failure", r["error_code"])
            for r in rows
        ],
        "message",
        [r["message"] for r in rows],
    )
