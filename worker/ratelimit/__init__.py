"""How the registry rate limit works: one limit per registry token, shared by every process that uses it.

- ``redis``: the cluster-wide limiter: GCRA in one Lua script on Redis's clock, with a per-second cap and a
  shared 429 back-off (production, any number of workers).
- ``local``: a token bucket for one process (the embedded demo).

Both implement ``worker.registry.port.RateLimiter``; ``worker.sync.runtime.limiter_for`` picks one.
"""
