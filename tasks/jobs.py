"""Task entry points. Transient errors retry with backoff; everything else is recorded by worker/.

How often is decided in the ledger, not here: a chunk's ``attempt`` and a run's ``plan_attempts`` count every
claim (retries and takeovers after a dead worker alike), and the last allowed claim fails instead of retrying.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from celery import Task

from config.settings import Settings, get_settings
from config.task_names import (
    ALERTS_EVALUATE,
    AUDIT_ANCHOR,
    PLAN_RUN,
    PUMP_REGISTRY,
    RETENTION_PURGE,
    SWEEP,
    SYNC_CHUNK,
    TICK,
)
from tasks.app import app
from worker.errors import LedgerNotMigrated
from worker.infra.dispatch import CeleryDispatcher

log = logging.getLogger(__name__)


def _dispatcher() -> CeleryDispatcher:
    """The tasks' dispatcher: a run a task closes is followed by an alert evaluation (beat's pass is the backstop)."""
    return CeleryDispatcher(evaluate_alerts=True)


def backoff_s(retries: int, settings: Settings, jitter: Callable[[], float] = random.random) -> float:
    """Seconds before retry number ``retries + 1``: doubling from ``retry_backoff_s`` up to
    ``retry_backoff_max_s``, half of it random (so that chunks failing together do not retry together)."""
    full = min(settings.retry_backoff_max_s, settings.retry_backoff_s * 2.0**retries)
    return full / 2 + jitter() * full / 2


def _retrying(task: Task, work: Callable[[], str], max_attempts: int) -> str:
    """Run ``work``; a transient error is retried with backoff (the ledger bounds the attempts, see worker/)."""
    from worker.sync.failures import classify

    try:
        return work()
    except Exception as exc:
        if not classify(exc).transient:
            raise
        countdown = backoff_s(task.request.retries, get_settings())
        raise task.retry(exc=exc, countdown=countdown, max_retries=max_attempts) from exc


@app.task(name=PLAN_RUN, bind=True, acks_late=True)
def plan_run(self: Task, run_id: int) -> str:
    from worker.sync.plan import plan_run as plan

    # A planner that dies is resumed by the sweeper; the run's plan_attempts bound both.
    def work() -> str:
        return plan(int(run_id), _dispatcher()).value

    return _retrying(self, work, get_settings().plan_max_attempts)


@app.task(name=SYNC_CHUNK, bind=True, acks_late=True)
def sync_chunk(self: Task, chunk_id: int) -> str:
    from worker.infra.metrics import timed_chunk
    from worker.sync.chunk import sync_chunk as sync

    def work() -> str:
        return timed_chunk(lambda: sync(int(chunk_id), dispatch=_dispatcher())).value

    return _retrying(self, work, get_settings().chunk_max_attempts)


@app.task(name=PUMP_REGISTRY, acks_late=True)
def pump_registry(run_id: int) -> str:
    """Claim the run's registry pump and start it in a thread of this worker process (it takes no pool slot);
    a pump that dies is resent by the sweeper, so a failed claim is not retried here."""
    from worker.sync.pump import start_pump

    return start_pump(int(run_id)).value


def _periodic(work: Callable[[], dict[str, int]]) -> dict[str, int]:
    """A beat task's pass; on a ledger not migrated yet (beat started beside `release`) one clear log line
    instead of a traceback every 30 s, and the next pass tries again."""
    try:
        return work()
    except LedgerNotMigrated as exc:
        log.error("%s; this pass is skipped", exc.message)
        return {"skipped_unmigrated": 1}


@app.task(name=SWEEP, acks_late=True)
def sweep() -> dict[str, int]:
    from worker.sync.sweeper import sweep as run_sweep

    return _periodic(lambda: run_sweep(_dispatcher()).as_dict())


@app.task(name=TICK, acks_late=True)
def tick() -> dict[str, int]:
    from worker.scheduling.tick import tick as run_tick

    return _periodic(lambda: run_tick(_dispatcher()).as_dict())


@app.task(name=ALERTS_EVALUATE, acks_late=True)
def alerts_evaluate(run_id: int | None = None) -> dict[str, int]:
    """One pass of the alert evaluator, over every connection: on beat every 30 s, and right after a run closes.

    ``run_id`` names the run whose close asked for the pass; it only labels the pass in the log, since a pass
    looks at every connection anyway.
    """
    from worker.alerts.evaluator import evaluate
    from worker.changes.digest import send_digest

    if run_id is not None:
        log.debug("alert pass after run %s closed", run_id, extra={"run_id": run_id})
        _status_digest(send_digest, run_id)

    return _periodic(lambda: evaluate().as_dict())


def _status_digest(send: Callable[[int], bool], run_id: int) -> None:
    """A closed changes run's status digest (worker.changes.digest); never stops the alert pass."""
    try:
        send(run_id)
    except Exception:
        log.warning("status digest failed", exc_info=True, extra={"run_id": run_id})


@app.task(name=RETENTION_PURGE, acks_late=True)
def retention_purge() -> dict[str, int]:
    """One purge pass over every connection, each under its own [retention] policy."""
    from worker.ledger.models import utcnow
    from worker.retention.purge import purge_all

    return _periodic(lambda: purge_all("beat", utcnow()))


@app.task(name=AUDIT_ANCHOR, acks_late=True)
def audit_anchor() -> dict[str, int]:
    """Publish the signed head of the audit chain to the SIEM feed and the log."""
    from worker.ledger.db import session_scope
    from worker.ledger.models import utcnow
    from worker.retention.anchor_publish import publish

    def work() -> dict[str, int]:
        with session_scope() as session:
            record = publish(session, utcnow())
        return {"head_id": int(record["head_id"]) if record else 0}

    return _periodic(work)
