"""`regsync alerts …` (list, show, ack, test, settings) and `regsync report compliance`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from worker.alerts.notice_settings import set_alert_settings
from worker.alerts.probe import send_test_notice
from worker.alerts.queries import ack_alert, list_alerts, show_alert
from worker.alerts.report import compliance_report, parse_since
from worker.alerts.report_html import render_html
from worker.alerts.report_text import render_text
from worker.cli.admin import ActorOption, JsonOption, ledger, say
from worker.cli.common import EXIT_FAILED, console, handles_errors, print_json, require_actor
from worker.cli.tables import print_table
from worker.ledger.models import utcnow
from worker.text_input import check_db_id

alerts_app = typer.Typer(
    no_args_is_help=True, help="List, acknowledge and test alerts; change notice settings."
)
report_app = typer.Typer(no_args_is_help=True, help="Reports for auditors.")


def _short(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else "–"


@alerts_app.command("list")
@handles_errors
def alerts_list(
    open_only: Annotated[bool, typer.Option("--open", help="Only unresolved alerts.")] = False,
    connection: Annotated[
        str | None, typer.Option("--connection", "-c", help="Only this connection.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """Alerts, newest first."""
    with ledger() as session:
        rows = list_alerts(session, open_only=open_only, connection=connection, limit=limit)
    if as_json:
        print_json(rows)
        return
    headers = ("id", "connection", "kind", "subject", "status", "detected", "notify by", "notified", "level")
    table = (
        (
            str(row["id"]),
            row["connection"],
            row["kind"],
            row["subject"],
            row["status"],
            _short(row["detected_at"]),
            _short(row["notify_by"]),
            _short(row["notified_at"]),
            str(row["escalation_level"]),
        )
        for row in rows
    )
    print_table(console, headers, table, right=("id", "level"))


@alerts_app.command("show")
@handles_errors
def alerts_show(
    alert_id: Annotated[int, typer.Argument(metavar="ALERT")], as_json: JsonOption = False
) -> None:
    """One alert with every transition and delivery attempt."""
    check_db_id(alert_id, "alert")
    with ledger() as session:
        view = show_alert(session, alert_id)
    if as_json:
        print_json(view)
        return
    say(f"alert {view['id']} {view['kind']} ({view['subject']}) of {view['connection']}: {view['status']}")
    for key in ("detected_at", "opened_at", "notify_by", "notified_at", "acknowledged_at", "resolved_at"):
        say(f"  {key}: {view[key] or '-'}")
    for t in view["transitions"]:
        change = f"{t['from'] or '-'} -> {t['to']}"
        say(f"  {t['at']}  {t['event']:<12} {change}  level {t['escalation_level']}  by {t['actor']}")
    for d in view["deliveries"]:
        say(f"  {d['at']}  {d['notice']:<10} {d['channel']}: {'ok' if d['ok'] else d['error']}")


@alerts_app.command("ack")
@handles_errors
def alerts_ack(alert_id: Annotated[int, typer.Argument(metavar="ALERT")], actor: ActorOption = None) -> None:
    """Acknowledge an alert: its escalation stops (audited)."""
    check_db_id(alert_id, "alert")
    who = require_actor(actor)
    with ledger() as session:
        view = ack_alert(session, alert_id, who)
    say(f"alert {alert_id} acknowledged by {who} ({view['kind']} on {view['connection']})")


@alerts_app.command("test")
@handles_errors
def alerts_test(
    connection: Annotated[str, typer.Argument(help="The connection whose channels to test.")],
    actor: ActorOption = None,
) -> None:
    """Send a test notice through every channel of CONNECTION; exit 1 if any channel failed."""
    who = require_actor(actor)
    results = send_test_notice(connection, who)
    if not results:
        say(f"connection {connection} has no alert channels; add them under [alerts.channels] in its file")
        raise typer.Exit(EXIT_FAILED)
    for name, problem in results.items():
        say(f"{name}: {'ok' if problem is None else 'FAILED: ' + problem}")
    if any(problem is not None for problem in results.values()):
        raise typer.Exit(EXIT_FAILED)


@alerts_app.command("settings")
@handles_errors
def alerts_settings(
    connection: Annotated[str, typer.Argument(help="The connection.")],
    notice_period_minutes: Annotated[
        int | None,
        typer.Option("--notice-period-minutes", help="Minutes from detection to the notice deadline."),
    ] = None,
    repeat: Annotated[
        int | None, typer.Option("--repeat", help="Times the escalation policy repeats.")
    ] = None,
    actor: ActorOption = None,
) -> None:
    """Change a connection's notice settings (admin, audited; at most 72 hours)."""
    who = require_actor(actor)
    changes: dict[str, Any] = {}
    if notice_period_minutes is not None:
        changes["notice_period_minutes"] = notice_period_minutes
    if repeat is not None:
        changes["repeat"] = repeat
    with ledger() as session:
        after = set_alert_settings(session, connection, changes, actor=who)
    say(
        f"alert settings of {connection}: notice period {after['notice_period_minutes']} min, repeat {after['repeat']}"
    )


@report_app.command("compliance")
@handles_errors
def report_compliance(
    since: Annotated[str, typer.Option("--since", help="Period ending now: 30d, 12h, 90m, 2w.")] = "30d",
    connection: Annotated[
        list[str] | None,
        typer.Option("--connection", "-c", help="Only this connection (repeat for several; default all)."),
    ] = None,
    as_json: JsonOption = False,
    as_html: Annotated[bool, typer.Option("--html", help="Print a self-contained HTML page.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead.")] = None,
) -> None:
    """Runs that failed or got stuck and why, who is told, notices within deadline, audit chain head."""
    period = parse_since(since)
    with ledger() as session:
        report = compliance_report(session, utcnow(), period, connection or None)
    if as_html:
        text = render_html(report)
    elif as_json or output is not None:  # a file gets JSON unless --html
        text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    else:
        text = "\n".join(render_text(report)) + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
        say(f"report written to {output}")
        return
    typer.echo(text, nl=False)
