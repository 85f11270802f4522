"""The Celery app, configured from settings; logging and per-process resets happen on worker start."""

from __future__ import annotations

from typing import Any

from celery.signals import (
    beat_init,
    setup_logging,
    task_postrun,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)

from config.celery import get_app
from config.settings import get_settings

app = get_app()


@setup_logging.connect
def _configure_logging(**_kwargs: Any) -> None:
    from config.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)


@worker_process_init.connect
def _fresh_connections(**_kwargs: Any) -> None:
    # A forked child must not share the parent's database connections.
    from worker.ledger.db import reset_engines

    reset_engines()


@worker_init.connect  # the worker's main process (before a prefork pool forks; a threads pool runs tasks here)
@worker_process_init.connect  # each prefork pool child
def _freeze_long_lived(**_kwargs: Any) -> None:
    # Short collection pauses (worker.infra.gc_freeze).
    from worker.infra.gc_freeze import freeze_long_lived

    freeze_long_lived()


@task_postrun.connect
def _freeze_new_modules(**_kwargs: Any) -> None:
    # A task's first run imports its adapters: leave them out of later collections too.
    from worker.infra.gc_freeze import freeze_if_modules_grew

    freeze_if_modules_grew()


@worker_ready.connect
def _worker_heartbeat(sender: Any = None, **_kwargs: Any) -> None:
    # Read by /v1/health: this worker is alive (a thread in the main process, not in the pool children).
    from worker.infra import heartbeat

    heartbeat.start("worker", str(getattr(sender, "hostname", None) or _process_name()))


@beat_init.connect
def _beat_heartbeat(**_kwargs: Any) -> None:
    from worker.infra import heartbeat

    heartbeat.start("beat", _process_name())


@worker_shutdown.connect
def _stop_heartbeats(**_kwargs: Any) -> None:
    from worker.infra import heartbeat

    heartbeat.stop_all()


def _process_name() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"
