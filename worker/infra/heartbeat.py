"""Process heartbeats in Redis: workers and beat note that they are alive; ``/v1/health`` and ``regsync health``
read them.

Each process writes ``regsync:heartbeat:<role>:<name>`` (value: Unix time) every ``INTERVAL_S``. The key lives
``KEEP_S``, so health can say how long a dead process has been silent, and old ones disappear on their own.
A worker counts as alive within ``WORKER_GRACE_S``, beat within REGSYNC_BEAT_GRACE_S. Redis is the one place
every machine shares. Beat also starts the dead-man's switch (:mod:`worker.infra.deadman`) when a URL is set.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import redis

from worker.infra import process_state

log = logging.getLogger(__name__)

PREFIX = "regsync:heartbeat"
INTERVAL_S = 10.0
#: A worker silent for this long counts as dead (three missed beats).
WORKER_GRACE_S = 35.0
#: How long a silent process's last heartbeat stays readable, seconds.
KEEP_S = 86_400
ROLES = ("worker", "beat")


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)


def beat_once(url: str, role: str, name: str, now: float | None = None) -> None:
    """Write one heartbeat of process ``name`` in ``role`` (``worker`` or ``beat``)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    with _client(url) as client:
        client.set(f"{PREFIX}:{role}:{name}", f"{now if now is not None else time.time():.3f}", ex=KEEP_S)


@dataclass(frozen=True, slots=True)
class Seen:
    """A live process and how many seconds ago it last beat."""

    role: str
    name: str
    age_s: float


def last_seen(url: str, role: str, now: float | None = None) -> list[Seen]:
    """Every process of ``role`` heard from within ``KEEP_S``, alive or not, by name.

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


def alive(url: str, role: str, now: float | None = None, within_s: float = WORKER_GRACE_S) -> list[Seen]:
    """The processes of ``role`` that beat within ``within_s`` seconds.

    Raises:
        redis.RedisError: Redis cannot be read.
    """
    return [seen for seen in last_seen(url, role, now) if seen.age_s <= within_s]


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


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_THREADS: list[_Stoppable] = []


def start(role: str, name: str) -> HeartbeatThread | None:
    """Start beating for this process (REGSYNC_REDIS_URL) until :func:`stop_all`; the Celery signals call it.

    Beat also starts the dead-man's switch when REGSYNC_HEARTBEAT_URL is set. Not for an embedded worker on
    the memory transport (``regsync demo``): it is no member of a cluster, and there may be no Redis to write to.
    """
    from config.settings import get_settings

    settings = get_settings()
    if settings.broker_url.startswith("memory://"):
        return None
    thread = HeartbeatThread(settings.redis_url, role, name)
    thread.start()
    _THREADS.append(thread)
    if role == "beat" and settings.heartbeat_url is not None:
        _THREADS.append(
            _start_switch(settings.heartbeat_url.get_secret_value(), settings.heartbeat_interval_s)
        )
    return thread


def _start_switch(url: str, interval_s: float) -> _Stoppable:
    from worker.infra.deadman import DeadMansSwitch

    switch = DeadMansSwitch(url, interval_s)
    switch.start()
    return switch


def stop_all() -> None:
    """Stop this process's heartbeat threads (worker shutdown)."""
    while _THREADS:
        _THREADS.pop().stop()


process_state.register(__name__, "_THREADS", stop_all)
