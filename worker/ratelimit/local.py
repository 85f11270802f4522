"""An in-process token-bucket rate limiter implementing the registry's ``RateLimiter`` port.

Good for one process (the embedded demo, tests, benchmarks); the cluster-wide limiter shares the same
protocol but keeps its bucket in Redis.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class LocalRateLimiter:
    """A thread-safe token bucket: ``rate_per_s`` tokens per second, at most ``burst`` saved up.

    ``acquire`` blocks until a token is available; ``penalise`` (after a 429) empties the bucket and makes
    every caller wait until the penalty has passed.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._refilled_at = clock()
        self._blocked_until = float("-inf")

    def acquire(self) -> None:
        """Block until one request may be sent."""
        while True:
            wait = self._try_take()
            if wait <= 0:
                return
            self._sleep(wait)

    def penalise(self, retry_after_s: float) -> None:
        """Stop everyone for ``retry_after_s`` seconds from now, then refill from empty."""
        with self._lock:
            until = self._clock() + max(0.0, retry_after_s)
            self._blocked_until = max(self._blocked_until, until)
            self._tokens = 0.0
            # Tokens only start accruing again once the penalty is over, so nobody bursts right after it.
            self._refilled_at = max(self._refilled_at, self._blocked_until)

    def _try_take(self) -> float:
        """Take a token and return 0, or return how long to wait before trying again."""
        with self._lock:
            now = self._clock()
            if now < self._blocked_until:
                return self._blocked_until - now
            self._refill(now)
            # The epsilon absorbs float rounding: without it a bucket at 0.9999999999 asks for a wait that is
            # too small to move the clock, forever.
            if self._tokens >= 1.0 - 1e-9:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate_per_s

    def _refill(self, now: float) -> None:
        elapsed = now - self._refilled_at
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
            self._refilled_at = now
