"""The cluster-wide registry rate limiter: GCRA in one Lua script on Redis, on Redis's clock.

Every worker process on every machine that uses one registry token shares three keys:

* ``…:tat`` — GCRA's *theoretical arrival time* (µs, Redis server time). A request may go when
  ``tat - (burst - 1) · interval <= now``; it then moves ``tat`` on by one emission interval. Over any
  window of T seconds at most ``burst + T · rate`` requests pass.
* ``…:sent`` — the grant times (µs) of the last ``cap`` requests, newest first, where ``cap`` is the most
  requests one second may hold (:func:`window_cap`). A request may go only when the ``cap``-th most recent
  grant is at least one second old, so *no* one-second window holds more than ``cap``: a burst is spent
  within the per-second limit, never on top of it. Registries count requests per second (often in fixed
  wall-clock windows), and GCRA alone lets ``burst - 1`` more into a second whenever a waiting asker comes
  back late, which used up all of the headroom.
* ``…:blocked`` — "nobody sends before" (µs). A 429 seen by one worker sets it from ``Retry-After`` and pushes
  ``tat`` past it, so every worker on that token waits and nobody bursts when the penalty ends.

The script reads ``redis.call('TIME')``, never a host's clock, so skewed machines still share one schedule.
Keys are named by a hash of (provider, registry host, token): never the token, and two connections that share
a token share its limit (the registry counts per token).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import redis

from worker.connections.spec import RegistrySpec
from worker.errors import RegistryTransientError
from worker.infra import process_state
from worker.infra.shared_state import redis_errors

log = logging.getLogger(__name__)

# KEYS[1] tat (µs), KEYS[2] blocked-until (µs), KEYS[3] list of the last ARGV[5] grant times (µs, newest first).
# ARGV[1] 'take' | 'penalise', ARGV[2] emission interval (µs), ARGV[3] burst, ARGV[4] penalty (µs),
# ARGV[5] the most grants any one-second window may hold, ARGV[6] how many grant times to keep (at least
# ARGV[5]; a fixed floor, so processes with different caps mid-deploy never trim the list below each other's).
# Returns the µs to wait before asking again (0: the request may go now; for 'penalise' always 0).
# Numbers are formatted with %.0f: Lua 5.1's tostring would write 1.7e+15 and lose the microseconds.
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
local blocked = tonumber(redis.call('GET', KEYS[2])) or 0
local function keep(key, value)
  redis.call('SET', key, string.format('%.0f', value), 'PX', math.ceil((value - now) / 1000) + 1000)
end
if ARGV[1] == 'penalise' then
  local untl = now + tonumber(ARGV[4])
  if untl > blocked then
    blocked = untl
    keep(KEYS[2], blocked)
  end
  local restart = blocked + (burst - 1) * interval
  if tat < restart then keep(KEYS[1], restart) end
  return 0
end
if blocked > now then return blocked - now end
if tat < now then tat = now end
local allowed_at = tat - (burst - 1) * interval
local cap = tonumber(ARGV[5])
if redis.call('LLEN', KEYS[3]) >= cap then
  local cap_th = tonumber(redis.call('LINDEX', KEYS[3], cap - 1))
  if cap_th + 1000000 > allowed_at then allowed_at = cap_th + 1000000 end
end
if allowed_at > now then return allowed_at - now end
keep(KEYS[1], tat + interval)
redis.call('LPUSH', KEYS[3], string.format('%.0f', now))
redis.call('LTRIM', KEYS[3], 0, math.max(cap, tonumber(ARGV[6])) - 1)
redis.call('PEXPIRE', KEYS[3], 2000)
return 0
"""

#: Share of the configured rate left unused. The registry counts requests when they *arrive*; we count them when
#: they are *granted*, and the time in between (thread scheduling, a TLS handshake, the network, the registry's own
#: load) varies, so requests granted evenly can arrive bunched. 5% was needed while the benchmark's sandbox
#: shared the bench process (a garbage collection there stalled it for 240-490 ms and bunched 22-47 requests);
#: with the sandbox in a process of its own, as a real registry is, 2% gave no 429 at 200 req/s with Salesforce
#: at 0-1,000 ms (issue 13), and it is the difference between 0.95 R and 0.98 R. Bursts do not spend it
#: (:func:`window_cap`).
HEADROOM = 0.02
#: Longest single sleep between two asks (a penalty set meanwhile is seen at the next ask).
MAX_SLEEP_S = 1.0
#: Longest total wait in one acquire: past it the chunk is released and retried later, keeping its lease honest.
MAX_WAIT_S = 60.0


#: Grant times kept in the ``…:sent`` list: at least the cap, and never fewer than this (see the script).
KEEP_GRANTS = 1024
_ASKER_LOCKS: dict[str, threading.Lock] = {}
_ASKER_LOCKS_GUARD = threading.Lock()
process_state.register(__name__, "_ASKER_LOCKS", _ASKER_LOCKS.clear)


def _asker_lock(key: str) -> threading.Lock:
    """This process's one lock for asking Redis about ``key``."""
    with _ASKER_LOCKS_GUARD:
        return _ASKER_LOCKS.setdefault(key, threading.Lock())


def window_cap(rate_per_s: float, burst: int) -> int:
    """The most requests any one-second window may hold: the rate less :data:`HEADROOM`, burst included.

    A burst larger than that is still allowed to go at once (it is what the connection asks for), but then
    nothing more goes in that second.
    """
    # Rounded up, within the rate: at 10 req/s, 2% is a fifth of a request, and rounding it down to 9 a second
    # would cost 10% of a small token's rate. GCRA's spacing keeps a second's requests from bunching at its ends.
    return max(1, burst, min(math.floor(rate_per_s), math.ceil(rate_per_s * (1 - HEADROOM))))


def limiter_key(spec: RegistrySpec, token: str | None) -> str:
    """The Redis key prefix of one registry token: a SHA-256 of provider, host and token (never the token)."""
    host = urlsplit(spec.base_url).netloc.lower()
    digest = hashlib.sha256(f"{spec.provider}\0{host}\0{token or ''}".encode()).hexdigest()[:32]
    return f"regsync:ratelimit:{{{digest}}}"  # {…}: one Redis Cluster slot for both keys


class RedisRateLimiter:
    """GCRA shared through Redis; implements ``worker.registry.port.RateLimiter``.

    Args:
        client: Redis client (thread-safe; shared by the provider's threads).
        key: Prefix from :func:`limiter_key`.
        rate_per_s: Requests per second allowed on this token (the connection's ``requests_per_second``);
            the limiter schedules :data:`HEADROOM` below it.
        burst: Requests that may go at once after a quiet spell (``burst``; 1 = evenly spaced); a burst is
            spent within the second's :func:`window_cap`, not on top of it.
        max_wait_s: Longest time one acquire may block before giving up with a transient error.
    """

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        rate_per_s: float,
        burst: int,
        *,
        max_wait_s: float = MAX_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.key = key
        self.rate_per_s = rate_per_s
        self.burst = burst
        # Rounded up: a limiter may be a hair slower than asked, never faster.
        self.interval_us = math.ceil(1_000_000 / (rate_per_s * (1 - HEADROOM)))
        self.window_cap = window_cap(rate_per_s, burst)
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._script = client.register_script(GCRA_LUA)
        self._keys = [f"{key}:tat", f"{key}:blocked", f"{key}:sent"]
        # One thread of this process asks Redis at a time; the others queue here. Without it every waiting
        # thread is told the same "allowed at", wakes at that instant, and all but one ask again: a herd of
        # Redis calls and wake-ups per request that grows with the pool and adds its own jitter. Per key, not
        # per instance: each chunk builds its own limiter, and a threads pool runs several chunks at once.
        self._one_asker = _asker_lock(key)

    def acquire(self) -> None:
        """Block until one request may be sent on this token.

        Raises:
            SharedStateUnavailable: Redis did not answer (never "unlimited" instead).
            RegistryTransientError: the wait would pass ``max_wait_s`` (a long Retry-After elsewhere).
        """
        started = time.monotonic()
        if not self._one_asker.acquire(timeout=self.max_wait_s):
            raise RegistryTransientError(
                f"other chunks of this process held the registry rate limit for over {self.max_wait_s:.0f} s; "
                "this one will be retried later",
                retry_after=self.max_wait_s,
            )
        try:
            self._wait_for_token(waited=time.monotonic() - started)
        finally:
            self._one_asker.release()

    def _wait_for_token(self, waited: float) -> None:
        while True:
            wait_s = self._ask("take", 0) / 1_000_000
            if wait_s <= 0:
                return
            if waited + wait_s > self.max_wait_s:
                raise RegistryTransientError(
                    f"the registry rate limit would hold this chunk for {waited + wait_s:.0f} s; "
                    "it will be retried later",
                    retry_after=wait_s,
                )
            step = min(wait_s, MAX_SLEEP_S)
            self._sleep(step)
            waited += step

    def penalise(self, retry_after_s: float) -> None:
        """A 429 was seen: every process using this token waits ``retry_after_s`` from now (Redis time)."""
        self._ask("penalise", max(0, math.ceil(retry_after_s * 1_000_000)))
        log.info("registry rate limit penalty shared", extra={"retry_after_s": retry_after_s})

    def _ask(self, mode: str, penalty_us: int) -> int:
        with redis_errors("taking a registry rate-limit token"):
            wait = self._script(
                keys=self._keys,
                args=[mode, self.interval_us, self.burst, penalty_us, self.window_cap, KEEP_GRANTS],
            )
        return int(wait)


def redis_limiter(client: redis.Redis, spec: RegistrySpec, token: str | None) -> RedisRateLimiter:
    """The cluster-wide limiter of a connection's registry token, at its configured rate and burst."""
    return RedisRateLimiter(client, limiter_key(spec, token), spec.requests_per_second, spec.burst)
