"""How many registry requests the pump keeps in flight: Little's law, L = λ × W, from observed latency.

λ is the registry token's rate, W the time one request takes from its rate-limit token to its answer. Fewer in
flight and the registry idles between answers; more only queue at the limiter. ``headroom`` covers latency
spread; the cap bounds threads and connections.
"""

from __future__ import annotations

import math
import threading
import time

from worker.registry.port import RateLimiter

#: Weight of each new latency sample in the moving average.
ALPHA = 0.05


class Pace:
    """The pump's requests-in-flight target, adapting to the latency it measures."""

    def __init__(self, rate_per_s: float, guess_s: float, headroom: float, cap: int) -> None:
        self.rate_per_s = rate_per_s
        self.latency_s = guess_s
        self.headroom = headroom
        self.cap = cap
        self.samples = 0
        self._lock = threading.Lock()

    def observe(self, latency_s: float) -> None:
        with self._lock:
            self.samples += 1
            self.latency_s += max(ALPHA, 1 / self.samples) * (latency_s - self.latency_s)

    @property
    def in_flight(self) -> int:
        """ceil(rate × latency × headroom) + 1 (one more for the request between answer and next token)."""
        wanted = math.ceil(self.rate_per_s * self.latency_s * self.headroom) + 1
        return max(1, min(self.cap, wanted))


class TimedLimiter:
    """A rate limiter that remembers, per thread, when its last token was granted (the request's start)."""

    def __init__(self, inner: RateLimiter) -> None:
        self._inner = inner
        self._local = threading.local()

    def acquire(self) -> None:
        self._inner.acquire()
        self._local.granted = time.monotonic()

    def penalise(self, retry_after_s: float) -> None:
        self._inner.penalise(retry_after_s)

    def granted_at(self) -> float | None:
        """When this thread's last request got its token (None: it has not sent one)."""
        return getattr(self._local, "granted", None)

    def forget(self) -> None:
        self._local.granted = None
