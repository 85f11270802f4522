"""The Celery app, configured from settings; logging and per-process resets happen on worker start."""

from __future__ import annotations

from typing import Any

from celery.signals import setup_logging, worker_process_init

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
