"""Where cluster-wide state lives: Redis for a cluster, this process for the embedded demo.

The registry rate limiter, the per-run company cache and the daily Salesforce API budget all need state that
every worker process sees. ``REGSYNC_SHARED_STATE`` picks the place; ``auto`` means Redis unless the broker is
``memory://`` (then there is only one process). Redis failures become :class:`SharedStateUnavailable`, a
transient error: the chunk is retried, regsync never carries on without its limits.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from config.settings import Settings
from worker.errors import SharedStateUnavailable
from worker.infra import process_state

Mode = Literal["redis", "local"]

#: Seconds a Redis command may take before the chunk gives up on it (and is retried).
REDIS_TIMEOUT_S = 5.0
#: A blip is retried 3 times within about half a second; a real outage fails the chunk fast (it is retried later).
REDIS_RETRY = Retry(ExponentialBackoff(cap=0.25, base=0.05), 3)

_CLIENTS: dict[tuple[int, str], redis.Redis] = {}
_CLIENTS_LOCK = threading.Lock()


def shared_mode(settings: Settings) -> Mode:
    """``redis`` or ``local``, resolving ``auto`` from the broker URL."""
    if settings.shared_state != "auto":
        return settings.shared_state
    return "local" if settings.broker_url.startswith("memory://") else "redis"


def shared_redis(settings: Settings) -> redis.Redis | None:
    """The Redis client that holds cluster-wide state, or None when it lives in this process (the demo).

    The one place that asks :func:`shared_mode`: worker.sync.runtime.SharedStores, the budget's admin and
    sweeper paths and the registry send tallies all start from here.
    """
    return redis_client(settings) if shared_mode(settings) == "redis" else None


def redis_client(settings: Settings) -> redis.Redis:
    """The process's client for REGSYNC_REDIS_URL (one pool per process: a forked child makes its own)."""
    key = (os.getpid(), settings.redis_url)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = redis.Redis.from_url(
                settings.redis_url,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
                health_check_interval=30,
                retry=REDIS_RETRY,
            )
            _CLIENTS[key] = client
        return client


def reset_clients() -> None:
    """Close and forget this process's Redis clients."""
    with _CLIENTS_LOCK:
        clients = list(_CLIENTS.values())
        _CLIENTS.clear()
    for client in clients:
        client.close()


process_state.register(__name__, "_CLIENTS", reset_clients)


@contextmanager
def redis_errors(doing: str) -> Iterator[None]:
    """Turn any Redis failure inside the block into SharedStateUnavailable (the URL may hold a password: not shown)."""
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        raise SharedStateUnavailable(
            f"Redis (REGSYNC_REDIS_URL) failed while {doing}: {type(exc).__name__}; the chunk will be retried. "
            "Check that Redis is running and reachable."
        ) from exc


def row_tag(row_id: int, created: dt.datetime) -> str:
    """A key part naming one ledger row across ledgers that share a Redis: its id and creation time.

    Two ledgers (a demo and production, or two test databases) both have a run 1; their creation times differ.
    """
    return f"{row_id}-{int(created.timestamp() * 1_000_000)}"
