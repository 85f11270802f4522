"""Prometheus metrics that the processes doing the work update (workers, and the web process for its own).

With ``PROMETHEUS_MULTIPROC_DIR`` set (a directory, emptied before the processes start) every process on a
machine writes its samples there and the web process's ``/metrics`` adds them up; without it each process
keeps its own samples in memory. Ledger-wide numbers (runs by status, API usage, open alerts) are not here:
they are read from the ledger at scrape time, see ``worker.api.metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Counter, Histogram

from worker.sync.outcomes import ChunkOutcome

#: The outcome label of a chunk task that raised (a transient error: Celery retries it).
RETRY = "retry"
CHUNK_SECONDS = Histogram(
    "regsync_chunk_duration_seconds",
    f"Wall time of one sync_chunk task, by outcome ({', '.join([*ChunkOutcome, RETRY])}).",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
REGISTRY_REQUESTS = Counter(
    "regsync_registry_requests",
    "Registry HTTP requests sent, retries included, by provider and status (HTTP code, timeout, error).",
    ["provider", "status"],
)
RATE_LIMIT_WAIT = Histogram(
    "regsync_ratelimit_wait_seconds",
    "Time a registry request waited for a rate-limiter token, by provider.",
    ["provider"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def timed_chunk(work: Callable[[], ChunkOutcome]) -> ChunkOutcome:
    """Run a chunk task's ``work`` and time it by its outcome (``retry`` if it raised, and re-raise)."""
    started = time.perf_counter()
    label: str = RETRY
    try:
        outcome = work()
        label = outcome.value
        return outcome
    finally:
        CHUNK_SECONDS.labels(label).observe(time.perf_counter() - started)


def registry_request(provider: str, status: int | str) -> None:
    """Count one registry request."""
    REGISTRY_REQUESTS.labels(provider, str(status)).inc()


def rate_limit_waited(provider: str, seconds: float) -> None:
    """Record how long one request waited for its rate-limiter token."""
    RATE_LIMIT_WAIT.labels(provider).observe(max(0.0, seconds))
