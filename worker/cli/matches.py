"""`regsync matches list|approve|reject`: the name-match review queue of a connection (audited).

The CRM's company name and the candidates (registry data) are shown to the admin here and never logged.
"""

from __future__ import annotations

import typer

from worker.cli.common import ACTOR_HELP, console, handles_errors, print_json, require_actor
from worker.cli.tables import print_table
from worker.connections.apply import load_connection
from worker.ledger.db import session_scope
from worker.matching import review

matches_app = typer.Typer(no_args_is_help=True, help="Records matched by name: list, approve or reject them.")


def _connection_id(connection: str) -> int:
    with session_scope() as session:
        row, _spec = load_connection(session, connection)
        return int(row.id)


@matches_app.command("list")
@handles_errors
def list_command(
    connection: str = typer.Argument(..., help="Connection name."),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000, help="At most this many, oldest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List CONNECTION's records waiting in name-match review, with their candidates and scores."""
    with session_scope() as session:
        row, _spec = load_connection(session, connection)
        views = review.list_waiting(session, row.id, limit)
    if as_json:
        print_json({"items": views})
        return
    rows = [
        [str(v["id"]), v["record_id"], v["crm_name"] or "", v["reason"] or "", _candidates(v["candidates"])]
        for v in views
    ]
    print_table(console, ("ID", "RECORD", "NAME", "REASON", "CANDIDATES"), rows, right=("ID",))


def _candidates(candidates: list[dict[str, object]]) -> str:
    return "; ".join(f"{c['org_number']} {c['name']} ({c['score']})" for c in candidates[:5])


@matches_app.command("approve")
@handles_errors
def approve_command(
    connection: str = typer.Argument(..., help="Connection name."),
    match_id: int = typer.Argument(..., help="Name match id (waiting in review)."),
    org_number: str | None = typer.Option(None, "--org", help="The candidate to take (default: the best)."),
    index: int | None = typer.Option(
        None, "--index", min=0, help="The candidate to take by its place in the list (0 is the best)."
    ),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
) -> None:
    """Take a candidate: its org number is written into the record; the next run syncs the rest."""
    from worker.changes.review import connection_crm

    who = require_actor(actor)
    connection_id = _connection_id(connection)
    with connection_crm(connection_id) as (spec, crm):
        review.approve(spec, connection_id, match_id, org_number=org_number, index=index, actor=who, crm=crm)
    console.print(f"name match {match_id} approved: the org number was written")


@matches_app.command("reject")
@handles_errors
def reject_command(
    connection: str = typer.Argument(..., help="Connection name."),
    match_ids: list[int] = typer.Argument(..., metavar="ID...", help="Name match ids (waiting in review)."),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
) -> None:
    """None of the candidates fits: the record is not asked again until its name changes."""
    who = require_actor(actor)
    connection_id = _connection_id(connection)
    for match_id in match_ids:
        review.reject(connection_id, match_id, who)
    console.print(f"rejected {len(match_ids)} name match(es)")
