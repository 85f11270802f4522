"""Acceptance 1 of issue 4: four Celery worker processes share one registry limit of R requests per second.

Four ``celery worker`` processes (prefork, one child each, 8 registry threads each) sync one run against a
sandbox registry that answers 429 above R requests in a calendar second, with 20 ms latency. The connection's
limit is R too. From the sandbox's own request log: in every sliding one-second window the registry saw at
most R·1.05 requests; the run completes with exactly the counts the seeded data implies; 429s are reported.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.conftest import RegsyncEnv
from tests.integration.celery_cluster import Cluster, ClusterEnv, celery_cluster, unique_queue
from tests.integration.inprocess_runs import install_connection, view
from tests.integration.test_ratelimit_redis import max_in_window
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger.models import RunStatus
from worker.sandbox.gc_pause import no_gc_pauses
from worker.sandbox.stack import sandbox_stack
from worker.sync.runner import start_run

pytestmark = pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)

R = 50
N_ACCOUNTS = 440  # ~420 unique valid org numbers: about 8 s of traffic at R
WORKERS = 4


def wait_final(run_id: int, timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = view(run_id)
        if RunStatus(str(current["status"])).final:
            return current
        time.sleep(0.25)
    pytest.fail(f"run {run_id} not finished after {timeout_s} s: {view(run_id)}")


def stop_all_at_once(cluster: Cluster) -> None:
    """SIGTERM every worker now, so that their warm shutdowns overlap instead of queueing up in ``stop()``."""
    for worker in cluster.workers:
        worker.signal_group(signal.SIGTERM)


def test_four_workers_keep_the_registry_at_its_rate_limit(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sandbox_stack(tmp_path / "sandbox", N_ACCOUNTS, countries=("NO", "SE", "DK")) as stack:
        world = ClusterEnv(env.database_url, redis_url, env.secret_key, stack.ca.bundle_path, unique_queue())
        world.apply(monkeypatch)
        data = stack.spec_data("limited", "proff", requests_per_second=R, burst=1)
        data["sync"] = {"chunk_size": 25}
        install_connection(stack, data)
        stack.registry.latency_s = 0.02
        stack.registry.rate_limit(R)
        with celery_cluster(world, tmp_path / "workers", WORKERS) as cluster, no_gc_pauses():
            run_id = start_run("limited", CeleryDispatcher(), triggered_by="test")
            final = wait_final(run_id, timeout_s=60)
            stop_all_at_once(cluster)
        arrivals = [request.at for request in stack.registry.requests]
        too_many = stack.registry.statuses[429]
        truth = stack.truth(stack.spec("limited", "proff"))

    busiest = max_in_window(arrivals)
    span = max(arrivals) - min(arrivals)
    print(
        f"\nregistry: {len(arrivals)} requests in {span:.2f} s = {len(arrivals) / span:.1f} req/s "
        f"(R = {R}, ratio {len(arrivals) / span / R:.2f}); busiest 1-s window {busiest}; 429s {too_many}"
    )
    assert busiest <= R * 1.05
    assert final["status"] == "partially_failed"  # the sandbox's validation rule refuses a few writes
    for key in ("planned", "invalid", "unchanged", "updated", "failed"):
        assert final[key] == getattr(truth, key), key
    assert final["registry_calls"] == len(arrivals) == truth.unique_valid_org_numbers + too_many
