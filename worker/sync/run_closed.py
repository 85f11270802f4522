"""A closed run's marker in Redis: once a run closes, none of its registry requests goes on the wire any more, and
nothing of it is cached again.

The chunk that closes a run sets ``regsync:run:{<run tag>}:closed`` inside the closing transaction, *before* it reads
what the run's registry pump sent (worker.sync.pump_ledger.charge_lost). From then on:

- a registry request of the run is refused as it is about to go on the wire (worker.sync.send_tally: the check and
  the tally are one Lua call), so an attempt still at work (the pump, a chunk whose lease ran out) stops with
  :class:`~worker.errors.RunClosed`;
- the run's company cache grants no claim and stores nothing (worker.sync.company_cache_stores), so a closed run's
  registry data is not written back after the cache was dropped.

So the ``registry_calls`` the closing transaction commits is every request the registry will ever receive for the
run (up to a request killed on its way out: the count errs on the side of the quota). The marker holds no data and
expires after a day, long after any attempt of the run has stopped.
"""

from __future__ import annotations

from config.settings import Settings
from worker.infra.shared_state import redis_errors, shared_redis

CLOSED_TTL_MS = 86_400_000


def closed_key(run_tag: str) -> str:
    """The marker's key: in the run's Redis Cluster slot, beside its cache and its send tallies."""
    return f"regsync:run:{{{run_tag}}}:closed"


def mark_closed(settings: Settings, run_tag: str, *, closed: bool = True) -> None:
    """Refuse the run's registry requests and cache claims from now on; ``closed=False`` lifts the mark (the
    closing transaction did not commit). Nothing to do without Redis (one process).

    Raises:
        SharedStateUnavailable: Redis failed.
    """
    client = shared_redis(settings)
    if client is None:
        return
    with redis_errors("marking a closed run" if closed else "lifting a closed run's mark"):
        if closed:
            client.set(closed_key(run_tag), b"1", px=CLOSED_TTL_MS)
        else:
            client.delete(closed_key(run_tag))
