"""`regsync demo`: run the main job end to end on the embedded default, with no services and no setup."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import typer

from config.logging import quieten
from worker.cli.common import EXIT_FAILED, console, handles_errors
from worker.cli.demo_console import DEFAULT_PORT, serve_console
from worker.cli.tables import print_table_with_notes


@handles_errors
def demo_command(
    *,
    directory: Path = typer.Option(
        Path(".regsync-demo"), "--dir", metavar="DIR", help="Where the demo keeps its ledger and CA."
    ),
    accounts: int = typer.Option(
        2000, "--accounts", min=10, max=200_000, help="Accounts in the sandbox org."
    ),
    redis: bool | None = typer.Option(
        None, "--redis/--no-redis", help="Use Redis as broker (default: if it answers)."
    ),
    redis_url: str = typer.Option(
        "redis://127.0.0.1:6379/15",
        "--redis-url",
        metavar="URL",
        show_default=False,
        help="The Redis to use as broker, a DB of the demo's own. Default: DB 15 of the Redis on 127.0.0.1, port 6379.",
    ),
    changes: bool = typer.Option(
        False,
        "--changes",
        help="After the full run, script a few hundred changes in the registry's change feed and run a changes "
        "run: only what changed is fetched and written. Prints what it cost against the full run.",
    ),
    web_console: bool = typer.Option(
        False,
        "--console",
        help="Then serve the web console on 127.0.0.1 and print a sign-in key; Ctrl-C stops.",
    ),
    console_port: int = typer.Option(
        DEFAULT_PORT, "--console-port", min=1, max=65535, metavar="PORT", help="The web console's port."
    ),
) -> None:
    """Start sandbox Salesforce + registry, create a connection and run a mass update with a progress bar.

    With --changes, a changes run follows the full run; with --console, the web console serves them afterwards.
    """
    from worker.cli.runs import print_summary, watch
    from worker.infra.dispatch import CeleryDispatcher
    from worker.sandbox import demo
    from worker.sandbox.stack import sandbox_stack
    from worker.sync.runner import start_run

    started = time.monotonic()
    quieten("alembic")
    quieten("kombu", level=logging.ERROR)  # "No hostname was supplied" on the memory transport, and its INFO
    env = demo.prepare(directory.resolve(), use_redis=redis, redis_url=redis_url)
    _print_header(accounts, env.database_url, env.broker_url, redis_url)
    with sandbox_stack(env.directory, accounts) as stack:
        os.environ.update(stack.trust_env())
        spec_data = stack.spec_data(requests_per_second=400, burst=40)
        demo.create_connection(
            spec_data,
            {"salesforce_client_secret": stack.client_secret, "registry_token": stack.registry_token},
        )
        with demo.embedded_worker():
            run_id = start_run(spec_data["name"], CeleryDispatcher(), triggered_by="demo")
            view = watch(run_id)
            print_summary(view)
            _print_failures(run_id)
            ok = _compare_with_truth(view, stack.truth(stack.spec()))
            if changes:
                run_id, same = _changes_run(stack, spec_data["name"], view)
                ok = ok and same
            if web_console:
                serve_console(spec_data["name"], console_port)
        _print_registry_privacy(stack)
    console.print(
        f"demo finished in {time.monotonic() - started:.1f} s; inspect it with "
        f"REGSYNC_DATABASE_URL={env.database_url} regsync runs show {run_id}"
    )
    if not ok:
        raise typer.Exit(EXIT_FAILED)


def _print_header(accounts: int, database_url: str, broker_url: str, redis_url: str) -> None:
    """The demo's first lines: what it runs on, and which Redis it uses (or that it uses none)."""
    broker = "Redis" if broker_url.startswith("redis") else "in-process memory transport"
    console.print(
        f"[bold]regsync demo[/]: {accounts} Accounts in a sandbox Salesforce org, Proff sandbox "
        f"registry, Celery on {broker}",
        highlight=False,
    )
    if broker == "Redis":
        said = (
            f"using the Redis at {broker_url} (a DB of the demo's own) as broker; when no Redis answers "
            "there, the demo runs Celery in this process instead (as --no-redis does)"
        )
    else:
        said = f"no Redis used: Celery runs in this process (--redis uses the one at {redis_url})"
    console.print(said, highlight=False, markup=False)
    console.print(f"ledger: {database_url}", highlight=False, markup=False, soft_wrap=True)


def _print_failures(run_id: int, per_code: int = 2) -> None:
    """Failures by code, with a couple of examples of each."""
    from collections import defaultdict

    from worker.ledger.db import session_scope
    from worker.ledger.views import list_failures

    with session_scope() as session:
        rows = list_failures(session, run_id, limit=100_000)
    by_code: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_code[row["error_code"]].append(row)
    cells: list[tuple[str, str, str, str]] = []
    messages: list[str] = []
    for code, items in sorted(by_code.items(), key=lambda kv: -len(kv[1])):
        for i, row in enumerate(items[:per_code]):
            first = i == 0
            cells.append(
                (
                    code if first else "",
                    str(len(items)) if first else "",
                    row["record_id"],
                    row["org_number"] or "",
                )
            )
            messages.append(row["message"])
    headers = ("code", "records", "example record", "org number")
    print_table_with_notes(console, headers, cells, "message", messages, title="failures by reason")


#: Feed changes `demo --changes` scripts (a few hundred, fewer when the org is small).
DEMO_CHANGES = 300


def _changes_run(stack: Any, name: str, full: dict[str, Any]) -> tuple[int, bool]:
    """Script feed changes, run a changes run, print it and its cost against ``full``; (run id, counts ok)."""
    from worker.cli.runs import print_summary, watch
    from worker.infra.dispatch import CeleryDispatcher
    from worker.ledger.models import RunMode
    from worker.sandbox import demo
    from worker.sync.runner import start_run

    scripted = demo.script_feed_changes(stack, min(DEMO_CHANGES, max(10, full["planned"] // 6)))
    console.print(
        f"\n[bold]changes run[/]: scripted {scripted.total} changes in the registry's change feed: "
        f"{scripted.mapped} of mapped fields, {scripted.unmapped} of unmapped paths only, {scripted.new} new "
        f"units the CRM does not hold, {scripted.deleted} deleted, {scripted.removed} removed",
        highlight=False,
    )
    run_id = start_run(name, CeleryDispatcher(), triggered_by="demo", mode=RunMode.CHANGES)
    view = watch(run_id)
    print_summary(view)
    _print_cost(full, view)
    return run_id, _compare_feed(view, scripted)


def _print_cost(full: dict[str, Any], changes: dict[str, Any]) -> None:
    """What the changes run cost against the full run: registry and Salesforce calls, and their ratio."""
    for label, key in (("registry", "registry_calls"), ("Salesforce", "crm_calls")):
        ratio = full[key] / changes[key] if changes[key] else float("inf")
        console.print(
            f"cost: {label} calls {changes[key]} (changes run) against {full[key]} (full run), "
            f"{ratio:.1f}x fewer",
            highlight=False,
        )


def _compare_feed(view: dict[str, Any], scripted: Any) -> bool:
    expected = {
        "changes_seen": scripted.total,
        "changes_matched": scripted.matched,
        "changes_unmapped": scripted.unmapped,
    }
    wrong = [
        f"{key}: run {view[key]} ≠ scripted {value}" for key, value in expected.items() if view[key] != value
    ]
    if wrong:
        console.print("[bold red]feed counts do not match what was scripted:[/] " + "; ".join(wrong))
        return False
    console.print(
        "[bold green]✓[/] feed counts match what was scripted "
        + ", ".join(f"{key}={value}" for key, value in expected.items())
    )
    return True


def _print_registry_privacy(stack: Any) -> None:
    requests = stack.registry.requests
    methods = sorted({r.method for r in requests})
    feed = sum(1 for r in requests if "/changes/" in r.path or "/oppdateringer/" in r.path)
    console.print(
        f"registry saw {len(requests)} requests, methods {methods}, each carrying only a country "
        "and an organisation number in its path"
        + (f" (and {feed} change-feed requests, with a day and a scroll id)" if feed else "")
    )


def _compare_with_truth(view: dict[str, Any], truth: Any) -> bool:
    keys = ("planned", "invalid", "unchanged", "updated", "failed")
    mismatches = [
        f"{k}: run {view[k]} ≠ sandbox {getattr(truth, k)}" for k in keys if view[k] != getattr(truth, k)
    ]
    if mismatches:
        console.print("[bold red]counts do not match the sandbox's truth:[/] " + "; ".join(mismatches))
        return False
    console.print(
        "[bold green]✓[/] counts match the sandbox's truth "
        + ", ".join(f"{k}={getattr(truth, k)}" for k in keys)
    )
    return True
