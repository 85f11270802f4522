"""`regsync runs cancel RUN`: stop a run; queued chunks are dropped, running chunks finish (audited)."""

from __future__ import annotations

import typer

from worker.cli.common import ACTOR_HELP, console, handles_errors, print_json, require_actor
from worker.ledger.audit import append_event
from worker.ledger.cancel import cancel_run
from worker.ledger.db import session_scope
from worker.ledger.models import RunStatus, utcnow
from worker.text_input import check_db_id


@handles_errors
def cancel_command(
    run_id: int = typer.Argument(..., metavar="RUN"),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Cancel RUN: queued chunks are dropped, running chunks finish, the run ends cancelled."""
    check_db_id(run_id, "run")
    who = require_actor(actor)
    with session_scope() as session:
        result = cancel_run(session, run_id, utcnow())
        append_event(
            session,
            actor=who,
            action="run.cancel",
            target=f"run:{run_id}",
            before={"status": result.before},
            after={"status": result.after, "chunks_dropped": result.chunks_dropped},
        )
    if as_json:
        print_json(
            {
                "run_id": run_id,
                "before": result.before,
                "after": result.after,
                "chunks_dropped": result.chunks_dropped,
            }
        )
        return
    ending = "cancelled" if result.after == RunStatus.CANCELLED else "cancelling: running chunks finish first"
    console.print(f"run {run_id}: {ending} ({result.chunks_dropped} queued chunk(s) dropped)")
