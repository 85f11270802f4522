"""Task entry points. Transient errors retry with backoff; everything else is recorded by worker/."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task
from celery.signals import worker_init
from sqlalchemy.exc import DBAPIError

from tasks.app import app
from worker.dispatch import (
    ALERTS_EVALUATE,
    PLAN_RUN,
    SWEEP,
    SYNC_CHUNK,
    TICK,
    CeleryDispatcher,
    run_closed_listeners,
)
from worker.errors import TransientError
from worker.ledger.db import ledger_error, missing_table

log = logging.getLogger(__name__)

RETRY = {
    "autoretry_for": (TransientError, ConnectionError, TimeoutError),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


@app.task(name=PLAN_RUN, bind=True, acks_late=True, **RETRY)
def plan_run(self: Task, run_id: int) -> str:
    from worker.planning import plan_run as plan

    return plan(int(run_id), CeleryDispatcher())  # a planner that gives up is resumed by the sweeper


@app.task(name=SYNC_CHUNK, bind=True, acks_late=True, **RETRY)
def sync_chunk(self: Task, chunk_id: int) -> str:
    from worker.metrics import timed_chunk
    from worker.sync import sync_chunk as sync

    with timed_chunk() as outcome:
        outcome.append(sync(int(chunk_id), last_attempt=self.request.retries >= (self.max_retries or 0)))
    return outcome[0]


def _periodic(work: Callable[[], dict[str, int]]) -> dict[str, int]:
    """A beat task's pass; on a ledger not migrated yet (beat started beside `release`) one clear log line
    instead of a traceback every 30 s, and the next pass tries again."""
    try:
        return work()
    except DBAPIError as exc:
        if not missing_table(exc):
            raise
        log.error("%s; this pass is skipped", ledger_error(exc).message)
        return {"skipped_unmigrated": 1}


@app.task(name=SWEEP, acks_late=True)
def sweep() -> dict[str, int]:
    from worker.sweeper import sweep as run_sweep

    return _periodic(lambda: run_sweep(CeleryDispatcher()).as_dict())


@app.task(name=TICK, acks_late=True)
def tick() -> dict[str, int]:
    from worker.scheduling.tick import tick as run_tick

    return _periodic(lambda: run_tick(CeleryDispatcher()).as_dict())


@app.task(name=ALERTS_EVALUATE, acks_late=True)
def alerts_evaluate(run_id: int | None = None) -> dict[str, int]:
    """One pass of the alert evaluator: after every run (``run_id`` given) and on beat every 30 s."""
    from worker.alerts.evaluator import evaluate

    return _periodic(lambda: evaluate().as_dict())


def _evaluate_alerts_after(run_id: int) -> None:
    app.send_task(ALERTS_EVALUATE, kwargs={"run_id": run_id})


@worker_init.connect
def _evaluate_alerts_after_runs(**_kwargs: Any) -> None:
    # Only in a worker (prefork children inherit it): importing this module elsewhere must not send tasks.
    if _evaluate_alerts_after not in run_closed_listeners:
        run_closed_listeners.append(_evaluate_alerts_after)
