"""How the registry rate limit works: one limit per registry token, shared by every process that uses it.

- ``redis``: the cluster-wide limiter: GCRA in one Lua script on Redis's clock, with a per-second cap and a
  shared 429 back-off (production, any number of workers).
- ``local``: a token bucket for one process (the embedded demo).

Both implement ``worker.registry.port.RateLimiter``; :func:`limiter_for` picks one, given the shared Redis
client or None (``worker.infra.shared_state.shared_redis``; a task's ``worker.sync.runtime.SharedStores``).
"""

from __future__ import annotations

import threading

import redis

from worker.connections.spec import RegistrySpec
from worker.infra import process_state
from worker.ratelimit.local import LocalRateLimiter
from worker.registry.port import RateLimiter

#: This process's limiters (no shared Redis), one per connection and rate: a token bucket must outlive a task.
_LIMITERS: dict[tuple[int, float, int], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()
process_state.register(__name__, "_LIMITERS", _LIMITERS.clear)


def limiter_for(
    client: redis.Redis | None, connection_id: int, registry: RegistrySpec, token: str | None
) -> RateLimiter:
    """The rate limiter of a connection's registry token: cluster-wide on ``client``, else this process's."""
    if client is not None:
        from worker.ratelimit.redis import redis_limiter

        return redis_limiter(client, registry, token)
    key = (connection_id, registry.requests_per_second, registry.burst)
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = LocalRateLimiter(registry.requests_per_second, registry.burst)
        return _LIMITERS[key]
