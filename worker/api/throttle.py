"""Request limits of the API (per key; failed authentications per address): fixed one-minute windows, in
Redis when it answers, else in memory.

In Redis every web process shares the count (``INCR`` + ``EXPIRE`` in one transaction); in memory the limit
holds per process. A Redis failure mid-flight falls back to memory rather than failing the request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

log = logging.getLogger(__name__)

WINDOW_S = 60


class Throttle(Protocol):
    per_window: int

    def hit(self, key: str) -> float | None:
        """Count one request of ``key``; None when allowed, else the seconds until it may retry."""

    def count(self, key: str) -> int:
        """Count one event of ``key``; how many it has had in this window, this one included."""

    def peek(self, key: str) -> int:
        """How many events ``key`` has had in this window (nothing is counted)."""


class MemoryThrottle:
    """Fixed windows in a dict (one process)."""

    def __init__(self, per_window: int, *, clock: Callable[[], float] = time.time) -> None:
        self.per_window = per_window
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}

    def hit(self, key: str) -> float | None:
        return None if self.count(key) <= self.per_window else retry_after(self._clock())

    def count(self, key: str) -> int:
        window = int(self._clock() // WINDOW_S)
        with self._lock:
            if len(self._counts) > 10_000:
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            count = self._counts.get((key, window), 0) + 1
            self._counts[(key, window)] = count
        return count

    def peek(self, key: str) -> int:
        with self._lock:
            return self._counts.get((key, int(self._clock() // WINDOW_S)), 0)


class RedisThrottle:
    """Fixed windows in Redis, shared by every web process; falls back to ``fallback`` when Redis fails."""

    def __init__(
        self, client: redis.Redis, per_window: int, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.per_window = per_window
        self._clock = clock
        self._fallback = MemoryThrottle(per_window, clock=clock)

    def hit(self, key: str) -> float | None:
        return None if self.count(key) <= self.per_window else retry_after(self._clock())

    def _name(self, key: str) -> str:
        return f"regsync:api-rate:{key}:{int(self._clock() // WINDOW_S)}"

    def count(self, key: str) -> int:
        name = self._name(key)
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, WINDOW_S + 5)
                count, _ = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.warning("API rate limit falls back to memory: %s", type(exc).__name__)
            return self._fallback.count(key)
        return int(count)

    def peek(self, key: str) -> int:
        try:
            value = self.client.get(self._name(key))
        except (redis.RedisError, OSError) as exc:
            log.warning("API rate limit falls back to memory: %s", type(exc).__name__)
            return self._fallback.peek(key)
        return int(value) if value is not None else 0


def retry_after(now: float) -> float:
    """Seconds until the next window begins (at least 1)."""
    return max(1.0, math.ceil(WINDOW_S - (now % WINDOW_S)))


def make_throttle(redis_url: str, per_window: int) -> Throttle:
    """Redis-backed if ``redis_url`` answers a PING within half a second, else in memory."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        log.warning("Redis does not answer; the API rate limit is kept per process")
        return MemoryThrottle(per_window)
    return RedisThrottle(client, per_window)
