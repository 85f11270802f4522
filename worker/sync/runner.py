"""Starting runs on demand (CLI today, HTTP API later) and waiting for them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from worker.errors import ConnectionNotFound
from worker.infra.dispatch import Dispatcher
from worker.ledger import runs
from worker.ledger.db import session_scope
from worker.ledger.models import Connection, RunKind, RunStatus
from worker.ledger.views import show_run


def start_run(
    connection: str,
    dispatch: Dispatcher,
    *,
    triggered_by: str,
    kind: RunKind = RunKind.MANUAL,
    options: dict[str, Any] | None = None,
) -> int:
    """Queue a run of ``connection`` and send its planning task; returns the run id."""
    with session_scope() as session:
        connection_id = session.execute(select(Connection.id).where(Connection.name == connection)).scalar()
        if connection_id is None:
            raise ConnectionNotFound(
                f"no connection named {connection!r}; apply one with `regsync connection apply`"
            )
        run_id = runs.create_run(
            session, connection_id, kind=kind, triggered_by=triggered_by, options=options
        ).id
    dispatch.plan(run_id)
    return run_id


def wait_for(
    run_id: int,
    on_progress: Callable[[dict[str, Any]], None],
    *,
    poll_s: float = 0.25,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Poll the ledger until the run is final, reporting each view; returns the final view."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        with session_scope() as session:
            view = show_run(session, run_id)
        on_progress(view)
        if RunStatus(view["status"]).final:
            return view
        if deadline is not None and time.monotonic() > deadline:
            return view
        time.sleep(poll_s)
