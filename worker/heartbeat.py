"""Process heartbeats in Redis: workers and beat note that they are alive; ``/v1/health`` reads them.

Each process writes ``regsync:heartbeat:<role>:<name>`` (value: Unix time) every ``INTERVAL_S`` with a time to
live of ``TTL_S``, so a dead process disappears on its own. Redis is the one place every machine shares.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis

log = logging.getLogger(__name__)

PREFIX = "regsync:heartbeat"
INTERVAL_S = 10.0
#: A process silent for this long counts as dead (three missed beats).
TTL_S = 35
ROLES = ("worker", "beat")


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)


def beat_once(url: str, role: str, name: str, now: float | None = None) -> None:
    """Write one heartbeat of process ``name`` in ``role`` (``worker`` or ``beat``)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    with _client(url) as client:
        client.set(f"{PREFIX}:{role}:{name}", f"{now if now is not None else time.time():.3f}", ex=TTL_S)


@dataclass(frozen=True, slots=True)
class Seen:
    """A live process and how many seconds ago it last beat."""

    role: str
    name: str
    age_s: float


def alive(url: str, role: str, now: float | None = None) -> list[Seen]:
    """The processes of ``role`` that beat within ``TTL_S``.

    Raises:
        redis.RedisError: Redis cannot be read.
    """
    now = now if now is not None else time.time()
    seen: list[Seen] = []
    with _client(url) as client:
        keys = list(client.scan_iter(match=f"{PREFIX}:{role}:*", count=100))
        for key, value in zip(keys, client.mget(keys) if keys else [], strict=True):
            if value is None:
                continue
            name = key.decode().split(":", 3)[3]
            seen.append(Seen(role, name, max(0.0, round(now - float(value), 3))))
    return sorted(seen, key=lambda s: s.name)


class HeartbeatThread(threading.Thread):
    """A daemon thread that beats every ``INTERVAL_S`` until ``stop()``; Redis errors are logged, not raised."""

    def __init__(self, url: str, role: str, name: str, interval_s: float = INTERVAL_S) -> None:
        super().__init__(name=f"regsync-heartbeat-{role}", daemon=True)
        self.url, self.role, self.process_name, self.interval_s = url, role, name, interval_s
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                beat_once(self.url, self.role, self.process_name)
            except (redis.RedisError, OSError) as exc:
                log.warning("heartbeat not written: %s", type(exc).__name__, extra={"role": self.role})
            self._stopped.wait(self.interval_s)

    def stop(self) -> None:
        self._stopped.set()


_THREADS: list[HeartbeatThread] = []


def start(role: str, name: str) -> HeartbeatThread | None:
    """Start beating for this process (REGSYNC_REDIS_URL) until :func:`stop_all`; the Celery signals call it.

    Not for an embedded worker on the memory transport (``regsync demo``): it is no member of a cluster, and
    there may be no Redis to write to.
    """
    from config.settings import get_settings

    settings = get_settings()
    if settings.broker_url.startswith("memory://"):
        return None
    thread = HeartbeatThread(settings.redis_url, role, name)
    thread.start()
    _THREADS.append(thread)
    return thread


def stop_all() -> None:
    """Stop this process's heartbeat threads (worker shutdown)."""
    while _THREADS:
        _THREADS.pop().stop()
