"""`regsync changes list|approve|reject`: the change events of a connection and the review queue (audited).

Values are shown to the admin here and never logged; the audit trail gets event ids and outcomes only.
"""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy.orm import Session

from worker.changes import review
from worker.changes.models import ChangeOutcome
from worker.changes.review import Decision
from worker.cli.common import (
    ACTOR_HELP,
    EXIT_USAGE,
    console,
    fail,
    handles_errors,
    print_json,
    require_actor,
)
from worker.cli.tables import print_table
from worker.connections.apply import load_connection
from worker.errors import ChangeNotFound
from worker.ledger.db import session_scope
from worker.ledger.models import Connection
from worker.text_input import check_db_id

changes_app = typer.Typer(
    no_args_is_help=True, help="List change events; approve or reject changes in review."
)

_HEADERS = ("ID", "CREATED", "RECORD", "ORG", "FIELD", "OLD", "NEW", "OUTCOME", "REASON", "SOURCE")


@changes_app.command("list")
@handles_errors
def list_command(
    connection: str = typer.Argument(..., help="Connection name."),
    status: ChangeOutcome | None = typer.Option(None, "--status", help="Only events with this outcome."),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List CONNECTION's change events, newest first (values are shown while a change waits in review)."""
    with session_scope() as session:
        row, _spec = load_connection(session, connection)
        events, more = review.list_events(session, row.id, status=status, limit=limit)
        views = [review.event_view(event) for event in events]
    if as_json:
        print_json({"items": views, "more": more})
        return
    print_table(
        console, _HEADERS, [_row(view) for view in views], right=("ID",), title=_title(connection, more)
    )


def _title(connection: str, more: bool) -> str:
    return f"change events of {connection}" + (" (more: raise --limit)" if more else "")


def _row(view: dict[str, Any]) -> list[str]:
    def shown(value: object) -> str:
        return "" if value is None else str(value)

    return [
        str(view["id"]),
        view["created_at"].strftime("%Y-%m-%d %H:%M"),
        shown(view["record_id"]),
        f"{view['country']} {view['org_number']}",
        shown(view["field"]),
        shown(view["old_value"]),
        shown(view["new_value"]),
        view["outcome"],
        shown(view["reason"]),
        f"{view['source']} {view['item_id']}",
    ]


@changes_app.command("approve")
@handles_errors
def approve_command(
    ids: list[int] = typer.Argument(..., metavar="ID...", help="Change event ids (waiting in review)."),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Approve changes: each is written if the CRM still holds the value the event saw, else it returns to
    review with the current value."""
    who = require_actor(actor)
    decisions: list[Decision] = []
    for connection_id, event_ids in _by_connection(ids).items():
        with review.connection_crm(connection_id) as (spec, crm):
            decisions += review.approve(spec, connection_id, event_ids, who, crm)
    _print(decisions, as_json)


@changes_app.command("reject")
@handles_errors
def reject_command(
    ids: list[int] = typer.Argument(..., metavar="ID...", help="Change event ids (waiting in review)."),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Reject changes: the CRM is left alone."""
    who = require_actor(actor)
    decisions: list[Decision] = []
    for connection_id, event_ids in _by_connection(ids).items():
        with session_scope() as session:
            name = _name(session, connection_id)
            decisions += review.reject(session, (connection_id, name), event_ids, who)
    _print(decisions, as_json)


def _name(session: Session, connection_id: int) -> str:
    row = session.get(Connection, connection_id)
    return "" if row is None else row.name


def _by_connection(ids: list[int]) -> dict[int, list[int]]:
    for event_id in ids:
        check_db_id(event_id, "change event")
    try:
        with session_scope() as session:
            return review.connections_of(session, set(ids))
    except ChangeNotFound as exc:  # a typo is the caller's to fix, like an unknown run id
        fail(exc.message, EXIT_USAGE)


def _print(decisions: list[Decision], as_json: bool) -> None:
    if as_json:
        print_json([{"id": d.event_id, "outcome": d.outcome.value, "reason": d.reason} for d in decisions])
        return
    rows = [[str(d.event_id), d.outcome.value, d.reason or ""] for d in decisions]
    print_table(console, ("ID", "OUTCOME", "REASON"), rows, right=("ID",))
