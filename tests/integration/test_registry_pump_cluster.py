"""The registry pump with real ``celery worker`` processes, a real Redis and a PostgreSQL ledger (issue 13).

Shown: the pump fetches each planned org number once (the sandbox registry's log has each number once, none
invalid); it runs ahead of chunks that are slow on Salesforce and leaves them nothing to fetch; cancel stops it
within a second; a worker killed mid-run (the pump's) costs at most the in-flight window, never a second write,
and the sweeper resumes the pump from its cursor.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.integration.celery_cluster import (
    ClusterEnv,
    celery_cluster,
    cluster_env_for,
    install_connection,
    sweeper_loop,
)
from worker.errors import InvalidOrgNumber
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger.cancel import cancel_run
from worker.ledger.db import session_scope
from worker.ledger.models import Run, RunStatus, utcnow
from worker.orgnr import normalise
from worker.sandbox.registry import PROFF_PREFIX
from worker.sandbox.stack import Stack, sandbox_stack
from worker.sync.runner import start_run

NAME = "pumped"
DUPLICATES: dict[str, Any] = {"stale_share": 0.05, "invalid_share": 0.03, "duplicate_share": 0.05}


@dataclass
class World:
    stack: Stack
    env: ClusterEnv
    directory: Path


@pytest.fixture
def world(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: Any
) -> Iterator[World]:
    accounts, rps, lease_s = request.param
    with sandbox_stack(tmp_path / "sandbox", accounts, validation_failures=0, **DUPLICATES) as stack:
        cluster_env = cluster_env_for(
            env, redis_url, stack, "regsync-pump", log_level="INFO", chunk_lease_s=lease_s, registry_pump=True
        )
        cluster_env.apply(monkeypatch)
        install_connection(stack, stack.spec_data(NAME, "proff", requests_per_second=rps, burst=5), "alice")
        yield World(stack, cluster_env, tmp_path)


def run_row(run_id: int) -> Run:
    with session_scope() as session:
        run = session.execute(select(Run).where(Run.id == run_id)).scalar_one()
        session.expunge(run)
        return run


def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def asked(stack: Stack) -> Counter[str]:
    """How often the sandbox registry was asked for each org number (429s left out: they were not answered)."""
    return Counter(
        r.path.removeprefix(PROFF_PREFIX) for r in stack.registry.requests if r.path.startswith(PROFF_PREFIX)
    )


def invalid_sent(numbers: Counter[str]) -> list[str]:
    bad = []
    for path in numbers:
        country, _, number = path.partition("/")
        try:
            normalise(country, number)
        except InvalidOrgNumber:
            bad.append(path)
    return bad


def written_twice(stack: Stack) -> list[str]:
    writes: Counter[str] = Counter()
    for request in stack.salesforce.api_requests():
        if request.method == "PATCH":
            writes.update(str(r["id"]) for r in json.loads(request.body)["records"])
    return [record for record, n in writes.items() if n > 1]


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("world", [(1200, 300.0, 10)], indirect=True)
def test_pump_asks_each_number_once_and_chunks_find_it_cached(world: World) -> None:
    world.stack.salesforce.latency_s = 0.3  # chunks are slow on Salesforce: the pump runs ahead of them
    world.stack.registry.latency_s = 0.02
    with celery_cluster(world.env, world.directory / "workers", 2) as cluster, sweeper_loop():
        run_id = start_run(NAME, CeleryDispatcher(), triggered_by="test")
        wait_for(lambda: RunStatus(run_row(run_id).status).final, 50, "the run to end")
        output = cluster.output()
    run, truth, numbers = run_row(run_id), world.stack.truth(world.stack.spec(NAME)), asked(world.stack)

    assert run.status == "partially_failed"  # the invalid org numbers are failures; nothing else failed
    assert run.failed == 0 and run.pump_done and run.pump_attempts == 1
    assert "registry pump done" in output
    assert max(numbers.values()) == 1, [n for n, c in numbers.items() if c > 1][:5]
    assert len(numbers) == truth.unique_valid_org_numbers == run.registry_calls
    assert not invalid_sent(numbers)
    assert (run.invalid, run.updated, run.unchanged) == (truth.invalid, truth.updated, truth.unchanged)
    assert not written_twice(world.stack)


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("world", [(4000, 200.0, 30)], indirect=True)
def test_cancel_stops_the_pump_within_a_second(world: World) -> None:
    world.stack.salesforce.latency_s = 1.5  # a chunk takes 3 s or more: the pump fetches far ahead of them
    world.stack.registry.latency_s = 0.02
    with celery_cluster(world.env, world.directory / "workers", 2), sweeper_loop():
        run_id = start_run(NAME, CeleryDispatcher(), triggered_by="test")
        wait_for(lambda: len(world.stack.registry.requests) >= 1000, 40, "the pump to fetch ahead")
        with session_scope() as session:
            cancel_run(session, run_id, utcnow())
        cancelled_at = time.time()
        wait_for(lambda: RunStatus(run_row(run_id).status).final, 40, "the run to end")
        time.sleep(1.5)
    last = max(r.at for r in world.stack.registry.requests)
    run = run_row(run_id)
    assert run.status == "cancelled" and not run.pump_done
    assert last - cancelled_at < 1.0, f"registry asked {last - cancelled_at:.2f} s after the cancel"
    assert len(world.stack.registry.requests) < 4000 * 0.9  # it did stop: not every number was asked


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("world", [(3000, 200.0, 10)], indirect=True)
def test_a_killed_pump_costs_at_most_its_in_flight_window_and_is_resumed(world: World) -> None:
    from config.settings import get_settings

    world.stack.salesforce.latency_s = 0.4
    world.stack.registry.latency_s = 0.02
    with celery_cluster(world.env, world.directory / "workers", 2) as cluster, sweeper_loop():
        run_id = start_run(NAME, CeleryDispatcher(), triggered_by="test")
        wait_for(lambda: len(world.stack.registry.requests) >= 600, 40, "the pump to fetch ahead")
        (victim,) = [w for w in cluster.workers if "registry pump started" in w.output()]
        victim.kill()  # the pump's process, and whatever chunk it was running, die without a word
        cluster.start(1)
        wait_for(lambda: RunStatus(run_row(run_id).status).final, 55, "the run to end")
        survivors = "\n".join(w.output() for w in cluster.workers if w is not victim)
    run, truth, numbers = run_row(run_id), world.stack.truth(world.stack.spec(NAME)), asked(world.stack)

    settings = get_settings()
    window = settings.registry_pump_max_in_flight + settings.registry_concurrency  # the pump's + one chunk's
    asked_again = sum(count - 1 for count in numbers.values())
    assert asked_again <= window, f"{asked_again} numbers asked again"
    assert len(numbers) == truth.unique_valid_org_numbers and not invalid_sent(numbers)
    # Resumed (by a chunk that found its lease run out, or by the sweeper) from the dead pump's cursor.
    (resumed,) = [line for line in survivors.splitlines() if "registry pump started" in line]
    assert json.loads(resumed)["attempt"] == 2 and json.loads(resumed)["seq"] > 0
    assert run.pump_attempts == 2
    assert not written_twice(world.stack)
    assert (run.failed, run.updated, run.unchanged) == (0, truth.updated, truth.unchanged)
    # The dead pump's calls since its last heartbeat count too (its send tally): the ledger equals the registry's
    # log, give or take the requests killed on their way out (counted, never received: at most the window).
    received = len(world.stack.registry.requests)
    assert received <= run.registry_calls <= received + window, (run.registry_calls, received)
