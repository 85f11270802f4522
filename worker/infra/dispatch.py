"""How the domain asks for background work without importing the task modules: tasks are sent by name."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from worker.infra import process_state

PLAN_RUN = "regsync.plan_run"
SYNC_CHUNK = "regsync.sync_chunk"
SWEEP = "regsync.sweep"
TICK = "regsync.tick"
ALERTS_EVALUATE = "regsync.alerts_evaluate"

log = logging.getLogger(__name__)

#: Called with the run id after a transaction that closed a run committed (tasks/jobs.py registers the alert
#: evaluation here, so unit tests without a broker send nothing).
run_closed_listeners: list[Callable[[int], None]] = []
process_state.register(__name__, "run_closed_listeners", run_closed_listeners.clear)


def run_closed(run_id: int) -> None:
    """Notify every run-closed listener; a failing listener is logged (beat evaluates alerts anyway)."""
    for listener in list(run_closed_listeners):
        try:
            listener(run_id)
        except Exception:
            log.warning("run-closed listener failed", exc_info=True, extra={"run_id": run_id})


class Dispatcher(Protocol):
    def plan(self, run_id: int) -> None: ...

    def sync(self, chunk_ids: Sequence[int]) -> None: ...


class CeleryDispatcher:
    """Sends tasks through the process's Celery app (Redis in production, memory:// in the demo)."""

    def plan(self, run_id: int) -> None:
        from config.celery import get_app

        get_app().send_task(PLAN_RUN, args=[run_id])

    def sync(self, chunk_ids: Sequence[int]) -> None:
        from config.celery import get_app

        app = get_app()
        with app.producer_or_acquire() as producer:
            for chunk_id in chunk_ids:
                app.send_task(SYNC_CHUNK, args=[chunk_id], producer=producer)
