"""Keep the garbage collector of a process that hosts sandbox servers from stalling them mid-measurement.

The sandbox registry stamps each request as its server thread reads it and counts it against the 429 limit.
A full collection of the host process's heap (a seeded org and registry, the request logs) stopped every
sandbox thread for 240-490 ms in a 20,000-Account benchmark; the requests that reached the socket meanwhile
were then read, stamped and counted together: bunches of 22 (prefork) to 47 (threads pool) requests inside
10 ms, a busiest second of 219-240 while the limiter had granted at most 200 in any second. No real registry
shares our heap, so the benchmark and the rate-limit test measure with collection off.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_gc_pauses() -> Iterator[None]:
    """Collect once, freeze what survives, and collect no more until the block ends."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
