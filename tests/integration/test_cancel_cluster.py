"""`regsync runs cancel` through a real Redis broker and real ``celery worker`` processes (PostgreSQL ledger).

A manual run of 200 sandbox Accounts in chunks of 10 is started with `regsync run`; Salesforce answers slowly,
so two workers (one task at a time each) are busy with a chunk while the others wait in Redis. `regsync runs
cancel` is then run as a subprocess, with the sweeper ticking as beat would. Shown: the chunks that were queued
are dropped (their messages are still delivered, and the workers do nothing with them); the running ones finish
and count; the run ends ``cancelled``; no chunk starts after the cancel; no record of a dropped chunk is ever
written; and nothing at all reaches Salesforce after the run closed.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.integration.celery_cluster import (
    REPO_ROOT,
    ClusterEnv,
    celery_cluster,
    cluster_env_for,
    install_connection,
    sweeper_loop,
)
from tests.unit.fakes import counts
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, Chunk, ChunkStatus, Run, RunStatus
from worker.sandbox.stack import Stack, sandbox_stack

NAME = "cancelme"
ACCOUNTS = 200
CHUNK_SIZE = 10
SALESFORCE_LATENCY_S = 0.5  # per API call: a chunk (re-read + write) takes about a second or more


@dataclass
class World:
    stack: Stack
    env: ClusterEnv
    directory: Path

    def regsync(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker.cli.main", *args],
            cwd=REPO_ROOT,
            env=self.env.subprocess_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def world(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    with sandbox_stack(tmp_path / "sandbox", ACCOUNTS, validation_failures=0) as stack:
        cluster_env = cluster_env_for(env, redis_url, stack, "regsync-cancel", log_level="INFO")
        cluster_env.apply(monkeypatch)
        data = stack.spec_data(NAME, "proff", requests_per_second=2000, burst=200)
        data["sync"] = {"chunk_size": CHUNK_SIZE}
        install_connection(stack, data, "alice")
        yield World(stack, cluster_env, tmp_path)


def chunk_rows(run_id: int) -> list[Chunk]:
    with session_scope() as session:
        return list(session.scalars(select(Chunk).where(Chunk.run_id == run_id).order_by(Chunk.seq)))


def run_row(run_id: int) -> Run:
    with session_scope() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run


def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def planned_and_busy(run_id: int) -> bool:
    """Planning finished, a chunk is running, and most are still waiting in the queue."""
    statuses = [c.status for c in chunk_rows(run_id)]
    return (
        run_row(run_id).planned_complete
        and ChunkStatus.RUNNING.value in statuses
        and statuses.count(ChunkStatus.QUEUED.value) >= 10
    )


def broker_drained(env: ClusterEnv) -> bool:
    """No message of the test's queue waiting in Redis, and none delivered but not yet acknowledged."""
    client = redis.Redis.from_url(env.redis_url)
    try:
        return client.llen(env.queue) == 0 and client.hlen("unacked") == 0
    finally:
        client.close()


def patched_ids(stack: Stack, after: float = 0.0) -> list[tuple[float, str]]:
    """(arrival time, record Id) of every record in a PATCH the sandbox org received after ``after``."""
    found = []
    for request in stack.salesforce.api_requests():
        if request.method == "PATCH" and request.at > after:
            found += [(request.at, str(r["id"])) for r in json.loads(request.body)["records"]]
    return found


def chunk_task_results(worker_output: str) -> dict[int, list[str]]:
    """Chunk id → what each ``regsync.sync_chunk`` task returned, from the workers' JSON logs (celery.app.trace)."""
    results: dict[int, list[str]] = {}
    for line in worker_output.splitlines():
        if '"celery.app.trace"' not in line or "regsync.sync_chunk" not in line:
            continue
        data = json.loads(line).get("data", {})
        (chunk_id,) = json.loads(data["args"])
        results.setdefault(int(chunk_id), []).append(str(data.get("return_value", "raised")).strip("'"))
    return results


def epoch(moment: dt.datetime | None) -> float:
    assert moment is not None
    return moment.timestamp()


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_runs_cancel_through_redis_and_worker_processes_drops_queued_chunks_and_lets_running_ones_finish(
    world: World,
) -> None:
    world.stack.salesforce.latency_s = SALESFORCE_LATENCY_S

    with celery_cluster(world.env, world.directory / "workers", 2) as cluster, sweeper_loop() as sweeper:
        started = world.regsync("run", NAME, "--json", "--actor", "alice")
        assert started.returncode == 0, started.stderr[-3000:]
        run_id = int(json.loads(started.stdout)["id"])
        wait_for(lambda: planned_and_busy(run_id), 60, "planning to finish with a chunk running")
        running_before = {c.id for c in chunk_rows(run_id) if c.status == ChunkStatus.RUNNING.value}

        cancelled = world.regsync("runs", "cancel", str(run_id), "--actor", "bob", "--json")
        cancel_returned = time.time()
        assert cancelled.returncode == 0, cancelled.stderr[-3000:]

        wait_for(lambda: RunStatus(run_row(run_id).status).final, 60, "the run to end")
        wait_for(lambda: broker_drained(world.env), 30, "every chunk message to be delivered and acked")
        time.sleep(2.0)  # two more sweeps: nothing may be resent
        worker_output = cluster.output()

    answer = json.loads(cancelled.stdout)
    run, chunks = run_row(run_id), chunk_rows(run_id)
    done = [c for c in chunks if c.status == ChunkStatus.DONE.value]
    dropped = [c for c in chunks if c.status == ChunkStatus.CANCELLED.value]

    # The cancel: from running to cancelled, queued chunks dropped at once, audited.
    assert (answer["before"], answer["chunks_dropped"]) == ("running", len(dropped))
    assert answer["after"] in ("running", "cancelled")  # "running" = cancelling, its running chunks finish
    assert len(dropped) >= 2 and len(done) >= 1 and len(done) + len(dropped) == run.chunks_total
    effect = min(epoch(c.finished_at) for c in dropped)  # the cancel's own timestamp on what it dropped
    assert all(c.attempt == 0 and c.started_at is None for c in dropped)  # never claimed by any worker
    assert {c.error for c in dropped} == {"run cancelled"}
    # The running chunks finished and counted; nothing started after the cancel.
    assert running_before <= {c.id for c in done}
    assert all(epoch(c.started_at) <= cancel_returned for c in done)
    assert counts(run, "status", "cancel_requested", "chunks_done") == {
        "status": "cancelled",
        "cancel_requested": True,
        "chunks_done": run.chunks_total,
    }
    assert run.updated + run.unchanged + run.failed == sum(len(c.record_ids) for c in done)
    # Writes: only records of chunks that were already running; none of a dropped chunk, ever.
    written = patched_ids(world.stack)
    done_records = {r for c in done for r in c.record_ids}
    dropped_records = {r for c in dropped for r in c.record_ids}
    assert {record for _, record in written} <= done_records
    assert not {record for _, record in written} & dropped_records
    assert run.updated == len(written) == len(world.stack.salesforce.changes)
    assert any(epoch(c.finished_at) > effect for c in done)  # a chunk running at the cancel finished after it
    # After the run closed nothing reached Salesforce, though the dropped chunks' messages were all delivered.
    closed = epoch(run.finished_at)
    assert [r.path for r in world.stack.salesforce.api_requests() if r.at > closed] == []
    # Every chunk message went through Redis to a worker: the dropped ones found nothing to claim.
    results = chunk_task_results(worker_output)
    assert {c.id: results.get(c.id) for c in dropped} == {c.id: ["not_claimed"] for c in dropped}
    assert {c.id: results.get(c.id) for c in done} == {c.id: ["done"] for c in done}
    sweeps = sweeper.totals()
    assert sweeper.errors == [] and (sweeps["expired_chunks"], sweeps["stalled_chunks"]) == (0, 0)
    with session_scope() as session:
        event = session.execute(select(AuditEvent).where(AuditEvent.action == "run.cancel")).scalar_one()
    assert event.after is not None
    assert (event.actor, event.target, event.after["chunks_dropped"]) == (
        "bob",
        f"run:{run_id}",
        len(dropped),
    )
