"""How the domain asks for background work without importing the task modules: tasks are sent by name."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from config.task_names import ALERTS_EVALUATE, PLAN_RUN, PUMP_REGISTRY, SYNC_CHUNK

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    def plan(self, run_id: int) -> None: ...

    def sync(self, chunk_ids: Sequence[int]) -> None: ...

    def run_closed(self, run_id: int) -> None:
        """Run ``run_id`` closed, and the transaction that closed it committed (worker.ledger.runs calls it)."""
        ...


class CeleryDispatcher:
    """Sends tasks through the process's Celery app (Redis in production, memory:// in the demo).

    Args:
        evaluate_alerts: a closed run sends ``regsync.alerts_evaluate`` (the workers' dispatcher, tasks/jobs.py);
            elsewhere (CLI, API) beat evaluates the alerts within 30 s anyway.
    """

    def __init__(self, *, evaluate_alerts: bool = False) -> None:
        self.evaluate_alerts = evaluate_alerts

    def plan(self, run_id: int) -> None:
        from config.celery import get_app

        get_app().send_task(PLAN_RUN, args=[run_id])

    def sync(self, chunk_ids: Sequence[int]) -> None:
        from config.celery import get_app

        app = get_app()
        with app.producer_or_acquire() as producer:
            for chunk_id in chunk_ids:
                app.send_task(SYNC_CHUNK, args=[chunk_id], producer=producer)

    def pump(self, run_id: int) -> None:
        """Send run ``run_id``'s registry pump (worker.sync.pump); a duplicate finds it claimed and does nothing."""
        from config.celery import get_app

        get_app().send_task(PUMP_REGISTRY, args=[run_id])

    def run_closed(self, run_id: int) -> None:
        """Evaluate the alerts after the run (if asked to); a failed send is logged: beat evaluates them anyway."""
        if not self.evaluate_alerts:
            return
        from config.celery import get_app

        try:
            get_app().send_task(ALERTS_EVALUATE, kwargs={"run_id": run_id})
        except Exception:
            log.warning("alert evaluation after a run not sent", exc_info=True, extra={"run_id": run_id})
