"""`regsync standby`: the tail of the Procfile's ``release`` line, so plain ``honcho start`` runs the whole set.

honcho stops every process as soon as one exits, and ``alembic upgrade head`` exits by design. The ``release``
line is therefore ``alembic upgrade head && regsync standby``: under honcho (which puts HONCHO_PROCESS_NAME in
each process's environment) this waits for SIGTERM or SIGINT, so web, worker and beat keep running. Anywhere
else (Heroku's release phase, a deploy script) it returns at once, so the release step still finishes.
"""

from __future__ import annotations

import os
import signal

import typer

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def standby_command() -> None:
    """Under honcho, wait until stopped (SIGTERM or SIGINT), then exit 0; elsewhere exit 0 at once."""
    if not os.environ.get("HONCHO_PROCESS_NAME"):
        typer.echo("standby: not under honcho, nothing to wait for")
        return
    # Blocked before the line is printed: a stop signal sent right after it is waited for, not fatal.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    typer.echo(
        "ledger migrated to head; standing by so honcho keeps web, worker and beat running"
        " (Ctrl-C stops the set)"
    )
    signal.sigwait(STOP_SIGNALS)
