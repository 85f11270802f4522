"""Starting runs on demand (CLI today, HTTP API later) and waiting for them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from worker.errors import ConnectionNotFound, LedgerUnavailable
from worker.infra.dispatch import Dispatcher
from worker.ledger import runs
from worker.ledger.db import ride_out, session_scope
from worker.ledger.models import Connection, RunKind, RunMode, RunStatus
from worker.ledger.views import show_run


def start_run(
    connection: str,
    dispatch: Dispatcher,
    *,
    triggered_by: str,
    kind: RunKind = RunKind.MANUAL,
    options: dict[str, Any] | None = None,
    mode: RunMode = RunMode.FULL,
) -> int:
    """Queue a run of ``connection`` and send its planning task; returns the run id.

    ``mode`` is what the run reads: every record (``full``, the reconcile) or only what changed since the last
    changes run (``changes``: the CRM's SystemModstamp delta and the registry's change feed).
    """
    with session_scope() as session:
        connection_id = session.execute(select(Connection.id).where(Connection.name == connection)).scalar()
        if connection_id is None:
            raise ConnectionNotFound(
                f"no connection named {connection!r}; apply one with `regsync connection apply`"
            )
        run_id = runs.create_run(
            session, connection_id, kind=kind, triggered_by=triggered_by, options=options, mode=mode
        ).id
    dispatch.plan(run_id)
    return run_id


def wait_for(
    run_id: int,
    on_progress: Callable[[dict[str, Any]], None],
    *,
    poll_s: float = 0.25,
    timeout_s: float | None = None,
    outage_s: float = 600.0,
    on_outage: Callable[[LedgerUnavailable], None] | None = None,
) -> dict[str, Any]:
    """Poll the ledger until the run is final, reporting each view; returns the final view.

    A ledger that stops answering (restarted, failed over) is waited for, up to ``outage_s`` seconds at a time;
    ``on_outage`` hears of it once per outage.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def read() -> dict[str, Any]:
        with session_scope() as session:
            return show_run(session, run_id)

    while True:
        view = ride_out(read, within_s=outage_s, on_wait=on_outage)
        on_progress(view)
        if RunStatus(view["status"]).final:
            return view
        if deadline is not None and time.monotonic() > deadline:
            return view
        time.sleep(poll_s)
