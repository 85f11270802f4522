"""The Celery task names, spelled once: the beat schedule (``config/celery.py``), the task modules
(``tasks/jobs.py``) and the domain's dispatcher (``worker/infra/dispatch.py``, which sends tasks by name) all use
these. No imports, so the domain and the CLI can read them without loading Celery."""

from __future__ import annotations

PLAN_RUN = "regsync.plan_run"
SYNC_CHUNK = "regsync.sync_chunk"
SWEEP = "regsync.sweep"
TICK = "regsync.tick"
ALERTS_EVALUATE = "regsync.alerts_evaluate"
PUMP_REGISTRY = "regsync.pump_registry"
RETENTION_PURGE = "regsync.retention_purge"
AUDIT_ANCHOR = "regsync.audit_anchor"
