"""One real regsync run for the throughput and calls benchmarks.

A sandbox Salesforce org and a sandbox Proff registry over TLS (registry latency and a 429 limit switched on),
a fresh PostgreSQL ledger, a claimed Redis DB as broker and rate-limiter store, ``workers`` real
``celery worker`` processes, and the run started and watched the way ``regsync run --wait`` does it.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from resource import RUSAGE_SELF, getrusage
from typing import Any

from bench.rates import RateStats, rate_stats
from bench.services import Services, environment
from bench.workers import WorkerProcess, celery_workers
from worker.sandbox.gc_pause import no_gc_pauses
from worker.sandbox.stack import Stack, Truth, sandbox_stack

#: Only 5 % of the Accounts differ from the registry; none invalid, none sharing an org number, none
#: dissolved: the dataset the Salesforce-call lower bound is stated for.
BOUND_DATASET: dict[str, float] = {
    "stale_share": 0.05,
    "invalid_share": 0.0,
    "duplicate_share": 0.0,
    "dissolved_share": 0.0,
}


@dataclass(frozen=True, slots=True)
class SyncSetup:
    """What one benchmark run looks like; ``settings_env`` are REGSYNC_* values given to the workers."""

    accounts: int
    dataset: dict[str, Any]
    workers: int = 2
    pool: str = "prefork"
    worker_concurrency: int = 1  # tasks each worker process runs at once (--concurrency)
    latency_s: float = 0.05
    registry_limit_rps: float | None = 200.0
    requests_per_second: float = 200.0
    burst: int = 5
    registry_concurrency: int = 16
    timeout_s: float = 1800.0
    stall_s: float = 60.0
    extra_env: dict[str, str] = field(default_factory=dict)

    def settings_env(self) -> dict[str, str]:
        return {
            "REGSYNC_REGISTRY_CONCURRENCY": str(self.registry_concurrency),
            "REGSYNC_LOG_LEVEL": "WARNING",
            **self.extra_env,
        }


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a run reported (ledger view) and what the sandbox servers saw."""

    view: dict[str, Any]
    truth: Truth
    wall_s: float
    registry: RateStats
    registry_statuses: dict[int, int]
    salesforce_calls: Counter[str]
    registry_requests: int
    cpu_s: dict[str, float]
    load: tuple[float, float]
    registry_paths: Counter[str]
    limiter: str
    registry_times: list[float]
    salesforce_log: list[tuple[float, str]]

    @property
    def salesforce_total(self) -> int:
        return sum(self.salesforce_calls.values())

    @property
    def counts_match_truth(self) -> bool:
        keys = ("planned", "invalid", "unchanged", "updated", "failed")
        return self.view["status"] == "succeeded" and all(
            self.view[k] == getattr(self.truth, k) for k in keys
        )


def classify_salesforce(method: str, path: str) -> str:
    """Which kind of Salesforce API call a sandbox request was."""
    if "/query" in path:
        return "query"
    if "/composite/sobjects" in path:
        return "write" if method == "PATCH" else "read"
    return "other"


def _world_env(db_url: str, redis_url: str, ca_bundle: Path, setup: SyncSetup) -> dict[str, str]:
    from worker.connections.secrets import generate_key

    return {
        "REGSYNC_DATABASE_URL": db_url,
        "REGSYNC_BROKER_URL": redis_url,
        "REGSYNC_REDIS_URL": redis_url,
        "REGSYNC_SECRET_KEY": generate_key(),
        "REGSYNC_ACTOR": "bench",
        "SSL_CERT_FILE": str(ca_bundle),
        "REQUESTS_CA_BUNDLE": str(ca_bundle),
        **setup.settings_env(),
    }


def _create_connection(stack: Stack, setup: SyncSetup, name: str) -> str:
    from worker.sandbox.demo import create_connection

    spec_data = stack.spec_data(
        name, "proff", requests_per_second=setup.requests_per_second, burst=setup.burst
    )
    create_connection(
        spec_data, {"salesforce_client_secret": stack.client_secret, "registry_token": stack.registry_token}
    )
    return str(spec_data["name"])


class RunStalled(RuntimeError):
    """The run made no progress for too long (a worker crashed, or the tree is broken): stop measuring."""


def _progress(view: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(view[key] for key in ("status", "planned", "chunks_done", "registry_calls", "crm_calls"))


def _run_and_wait(name: str, setup: SyncSetup, workers: list[WorkerProcess]) -> tuple[dict[str, Any], float]:
    """Start the run like ``regsync run`` does and poll the ledger until it is final (or stalls)."""
    from worker.infra.dispatch import CeleryDispatcher
    from worker.ledger.db import session_scope
    from worker.ledger.models import RunStatus
    from worker.ledger.views import show_run
    from worker.sync.runner import start_run

    started = time.monotonic()
    run_id = start_run(name, CeleryDispatcher(), triggered_by="bench")
    last, moved = None, started
    while True:
        with session_scope() as session:
            view = show_run(session, run_id)
        now = time.monotonic()
        if RunStatus(view["status"]).final:
            return view, now - started
        if _progress(view) != last:
            last, moved = _progress(view), now
        if now - moved > setup.stall_s or now - started > setup.timeout_s:
            logs = "\n".join(f"--- {w.name}\n{w.log_tail(2000)}" for w in workers)
            raise RunStalled(
                f"run {run_id} is {view['status']} with no progress for {now - moved:.0f} s:\n{logs}"
            )
        time.sleep(0.1)


def _limiter_in_use(stack: Stack, setup: SyncSetup) -> str:
    """The limiter class the workers build for this connection under these settings (same code path)."""
    from config.settings import get_settings
    from worker.sync.runtime import Runtime, limiter_for

    runtime = Runtime(
        0,
        "bench",
        stack.spec("bench", requests_per_second=setup.requests_per_second, burst=setup.burst),
        "unused",
        stack.registry_token,
    )
    limiter = limiter_for(runtime, get_settings())
    interval_us = getattr(limiter, "interval_us", None)  # RedisRateLimiter: its schedule, headroom included
    paced = 1_000_000 / interval_us if interval_us else getattr(limiter, "rate_per_s", 0.0)
    return f"{type(limiter).__name__}, paces {paced:.1f} req/s"


def _cpu_s(who: int) -> float:
    usage = getrusage(who)
    return usage.ru_utime + usage.ru_stime


@dataclass
class _Observed:
    """What the sandbox logged during the run, copied before the workers stop."""

    view: dict[str, Any]
    wall_s: float
    registry_requests: list[Any]
    statuses: dict[int, int]
    load_after: float


def _observe(stack: Stack, setup: SyncSetup, name: str, workers: list[WorkerProcess]) -> _Observed:
    stack.registry.clear_requests()
    stack.salesforce.requests.clear()
    with no_gc_pauses():
        view, wall = _run_and_wait(name, setup, workers)
    time.sleep(0.2)  # replies still being written when the ledger already said "done"
    return _Observed(view, wall, stack.registry.requests, dict(stack.registry.statuses), os.getloadavg()[0])


def _measure(stack: Stack, setup: SyncSetup, name: str, workers: list[WorkerProcess]) -> SyncResult:
    stack.registry.latency_s = setup.latency_s
    stack.registry.rate_limit(setup.registry_limit_rps)
    cpu_self, cpu_workers = _cpu_s(RUSAGE_SELF), sum(w.cpu_s() for w in workers)
    load_before = os.getloadavg()[0]
    seen = _observe(stack, setup, name, workers)
    cpu = {
        "sandbox servers + bench": _cpu_s(RUSAGE_SELF) - cpu_self,
        "workers": sum(w.cpu_s() for w in workers) - cpu_workers,
    }
    return SyncResult(
        view=seen.view,
        truth=stack.truth(stack.spec(name)),
        wall_s=seen.wall_s,
        registry=rate_stats([r.at for r in seen.registry_requests]),
        registry_statuses=seen.statuses,
        salesforce_calls=Counter(
            classify_salesforce(r.method, r.path) for r in stack.salesforce.api_requests()
        ),
        registry_requests=len(seen.registry_requests),
        cpu_s=cpu,
        load=(load_before, seen.load_after),
        registry_paths=Counter(r.path for r in seen.registry_requests),
        limiter=_limiter_in_use(stack, setup),
        registry_times=sorted(r.at for r in seen.registry_requests),
        salesforce_log=[
            (r.at, classify_salesforce(r.method, r.path)) for r in stack.salesforce.api_requests()
        ],
    )


def run_syncs(setups: Sequence[SyncSetup], services: Services, workdir: Path) -> list[SyncResult]:
    """Seed one sandbox per setup, then run regsync over each in turn with the same real workers.

    The runs share one ledger, one Redis DB and the worker processes (started once, with the first setup's
    worker settings); each has its own sandbox org, registry, token and connection, so their numbers are
    separate. The workers trust one bundle holding every sandbox's CA.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as scope:
        db_url = scope.enter_context(services.database("sync"))
        redis_url = scope.enter_context(services.redis_db())
        stacks = [
            scope.enter_context(
                sandbox_stack(
                    workdir / f"sandbox-{i}", setup.accounts, validation_failures=0, **setup.dataset
                )
            )
            for i, setup in enumerate(setups)
        ]
        bundle = workdir / "sandbox-cas.pem"
        bundle.write_text("".join(stack.ca.bundle_path.read_text() for stack in stacks))
        scope.enter_context(environment(_world_env(db_url, redis_url, bundle, setups[0])))
        pairs = list(zip(stacks, setups, strict=True))
        names = [_create_connection(stack, setup, f"bench-{i}") for i, (stack, setup) in enumerate(pairs)]
        first = setups[0]
        workers = scope.enter_context(
            celery_workers(
                first.workers, workdir / "workers", pool=first.pool, concurrency=first.worker_concurrency
            )
        )
        return [
            _measure(stack, setup, name, workers) for (stack, setup), name in zip(pairs, names, strict=True)
        ]


def run_sync(setup: SyncSetup, services: Services, workdir: Path) -> SyncResult:
    """One regsync run (see :func:`run_syncs`)."""
    return run_syncs([setup], services, workdir)[0]
