"""The Celery app's configuration, built from settings; one app per process (tasks register on it)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from config.settings import Settings, get_settings
from config.task_names import ALERTS_EVALUATE, AUDIT_ANCHOR, RETENTION_PURGE, SWEEP, TICK

_APPS: dict[str, Celery] = {}


def celery_config(settings: Settings) -> dict[str, Any]:
    """Reliable delivery: late acks, requeue on worker loss, one message prefetched, long visibility timeout."""
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout_s},
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": settings.queue,
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_send_task_events": False,
        "beat_schedule": {
            "regsync-sweep": {"task": SWEEP, "schedule": 30.0},
            # A tick stuck behind busy workers is dropped, not piled up: the next one catches up.
            "regsync-tick": {"task": TICK, "schedule": 30.0, "options": {"expires": 25.0}},
            "regsync-alerts": {
                "task": ALERTS_EVALUATE,
                "schedule": 30.0,
                "options": {"expires": 25.0},
            },
            # Hourly: a purge's batches are short transactions, and a pass that finds nothing writes nothing.
            "regsync-retention": {
                "task": RETENTION_PURGE,
                "schedule": 3600.0,
                "options": {"expires": 3000.0},
            },
            # The signed audit-chain head, to the SIEM feed and the log (worker.ledger.anchor).
            "regsync-audit-anchor": {"task": AUDIT_ANCHOR, "schedule": 300.0, "options": {"expires": 250.0}},
        },
    }


def get_app() -> Celery:
    """The process-wide Celery app; the worker imports ``tasks.jobs`` to register the tasks."""
    if "app" not in _APPS:
        app = Celery("regsync", include=["tasks.jobs"])
        app.conf.update(celery_config(get_settings()))
        _APPS["app"] = app
    return _APPS["app"]


def reset_app() -> None:
    """Forget the app (the demo and tests change the broker URL)."""
    _APPS.clear()
