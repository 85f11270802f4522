"""`regsync runs resume RUN`: an admin resumes a run paused at the Salesforce API budget (audited)."""

from __future__ import annotations

from typing import Annotated

import typer

from config.settings import get_settings
from worker.cli.common import ACTOR_HELP, console, err_console, handles_errors, print_json, require_actor
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger.db import session_scope
from worker.ledger.models import RunStatus, utcnow
from worker.text_input import check_db_id


@handles_errors
def resume_command(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="The paused run.")],
    actor: Annotated[str | None, typer.Option("--actor", envvar="REGSYNC_ACTOR", help=ACTOR_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Resume a run paused at the API budget: its queued chunks are sent again (nothing is lost or redone)."""
    check_db_id(run_id, "run")
    who = require_actor(actor)
    with session_scope() as session:
        from worker.budget.control import resume_by_admin  # redis: only for this command

        result = resume_by_admin(session, run_id, who, get_settings(), utcnow())
    CeleryDispatcher().sync(result["chunk_ids"])
    if as_json:
        print_json({"run": run_id, "status": RunStatus.RUNNING.value, "chunks_requeued": len(result["chunk_ids"]),
                    "warning": result["warning"]})  # fmt: skip
        return
    console.print(
        f"run {run_id} resumed: {len(result['chunk_ids'])} queued chunk(s) sent again", highlight=False
    )
    if result["warning"]:
        err_console.print(f"note: {result['warning']}", highlight=False, markup=False)
