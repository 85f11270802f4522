"""Plan one run in this process and report its time and peak memory (VmHWM), for the scale benchmark.

``python -m bench.planner_probe RUN_ID`` with REGSYNC_DATABASE_URL, REGSYNC_SECRET_KEY and the sandbox CA in
the environment. It runs :func:`worker.sync.plan.plan_run` exactly as the ``regsync.plan_run`` task does, with
Salesforce clients from the connection's stored secret, but a dispatcher that discards the chunk ids (no
broker, no registry: only streaming and chunk inserts are measured). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from config.settings import Settings, get_settings


def memory_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


class DiscardingDispatcher:
    """A Dispatcher that only counts what it would have sent, and when (one mark per planner commit)."""

    def __init__(self) -> None:
        self.chunks = 0
        self.marks: list[tuple[float, int]] = []

    def plan(self, run_id: int) -> None:
        return None

    def sync(self, chunk_ids: Sequence[int]) -> None:
        self.chunks += len(chunk_ids)
        self.marks.append((time.perf_counter(), self.chunks))

    def run_closed(self, run_id: int) -> None:
        return None

    def halves_seconds(self) -> tuple[float, float]:
        """Seconds to plan chunks 10 % → 55 % and 55 % → 100 % of the run (same process, same moment).

        The first tenth is left out: it holds the query's start-up (token, the org sorting its records).
        """
        if len(self.marks) < 20:
            return 0.0, 0.0

        def reached(share: float) -> float:
            return next(t for t, n in self.marks if n >= share * self.chunks)

        middle = reached(0.55)
        return middle - reached(0.10), self.marks[-1][0] - middle


class _NoRegistry:
    calls = 0

    def close(self) -> None:
        return None


@contextmanager
def planner_clients(connection_id: int, settings: Settings) -> Iterator[Any]:
    """The connection's real Salesforce client (stored, decrypted secret); no registry client."""
    from worker.crm.salesforce import SalesforceClient
    from worker.sync.runtime import load_runtime

    runtime = load_runtime(connection_id)
    crm = SalesforceClient(runtime.spec, runtime.crm_secret, timeout_s=settings.crm_timeout_s)
    try:
        yield runtime, crm, _NoRegistry()
    finally:
        crm.close()


def probe(run_id: int) -> dict[str, Any]:
    """Plan ``run_id``; modules are imported before the clock starts (a worker has them loaded already)."""
    import worker.crm.salesforce
    import worker.sync.runtime  # noqa: F401
    from worker.sync.plan import plan_run

    settings = get_settings()
    rss_before = memory_kib("VmRSS")
    dispatcher = DiscardingDispatcher()
    started = time.perf_counter()
    outcome = plan_run(run_id, dispatcher, settings=settings, clients=planner_clients)
    elapsed = time.perf_counter() - started
    first_half, second_half = dispatcher.halves_seconds()
    return {
        "first_half_s": round(first_half, 3),
        "second_half_s": round(second_half, 3),
        "outcome": outcome,
        "seconds": round(elapsed, 3),
        "chunks_sent": dispatcher.chunks,
        "rss_before_mib": round(rss_before / 1024, 1),
        "peak_rss_mib": round(memory_kib("VmHWM") / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.planner_probe", description=__doc__)
    parser.add_argument("run_id", type=int)
    args = parser.parse_args(argv)
    print(json.dumps(probe(args.run_id)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
