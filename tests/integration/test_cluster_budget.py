"""Acceptance 3 of issue 4: a run pauses at the API budget and an admin resumes it; nothing lost or written twice.

Two Celery worker processes sync a run while the sandbox org has only a little of its daily allowance left
(``Sforce-Limit-Info``); the connection stops below 1,000 remaining calls. The run must pause (``paused_budget``,
``runs show`` says why) with chunks left in the queue; after the limit is raised, `regsync runs resume` (audited)
sends them again and the run completes with exactly the seeded counts, each changed record written once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import RegsyncEnv
from tests.integration.celery_cluster import ClusterEnv, celery_cluster, unique_queue
from tests.integration.inprocess_runs import install_connection, view
from tests.integration.test_cluster_rate_limit import stop_all_at_once, wait_final
from worker.cli.main import app
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, Chunk
from worker.sandbox.stack import sandbox_stack
from worker.sync.runner import start_run

pytestmark = pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)

LIMIT = 100_000
FLOOR = 1_000


def wait_paused(run_id: int, timeout_s: float) -> dict[str, Any]:
    """Wait until the run is paused and no chunk is running any more (chunks in flight finish first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = view(run_id)
        with session_scope() as session:
            running = session.scalars(
                select(Chunk.id).where(Chunk.run_id == run_id, Chunk.status == "running")
            )
            busy = running.first() is not None
        if current["status"] == "paused_budget" and not busy:
            return current
        if current["status"] not in ("queued", "running", "paused_budget"):
            pytest.fail(f"run {run_id} ended instead of pausing: {current}")
        time.sleep(0.2)
    pytest.fail(f"run {run_id} did not pause within {timeout_s} s: {view(run_id)}")


def test_budget_pause_then_admin_resume_loses_nothing_and_writes_nothing_twice(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sandbox_stack(tmp_path / "sandbox", 300, stale_share=0.5) as stack:
        world = ClusterEnv(env.database_url, redis_url, env.secret_key, stack.ca.bundle_path, unique_queue())
        world.apply(monkeypatch)
        data = stack.spec_data("frugal", requests_per_second=500, burst=50)
        data["sync"] = {"chunk_size": 20}  # 15 chunks of at most 2 calls
        data["budget"] = {"stop_below_remaining": FLOOR}
        install_connection(stack, data)
        stack.salesforce.set_api_usage(LIMIT - FLOOR - 10, LIMIT)  # 10 calls to spare: about 4 chunks
        with celery_cluster(world, tmp_path / "workers", 2) as cluster:
            run_id = start_run("frugal", CeleryDispatcher(), triggered_by="test")
            paused = wait_paused(run_id, timeout_s=40)
            shown = CliRunner().invoke(app, ["runs", "show", str(run_id)], env={"COLUMNS": "200"})
            writes_while_paused = sum(stack.salesforce.writes.values())
            used, _ = stack.salesforce.api_usage
            stack.salesforce.set_api_usage(used, 2 * LIMIT)  # the customer buys more calls
            resumed = CliRunner().invoke(app, ["runs", "resume", str(run_id), "--actor", "ops-admin"])
            final = wait_final(run_id, timeout_s=40)
            stop_all_at_once(cluster)
        truth = stack.truth(stack.spec("frugal"))
        writes = stack.salesforce.writes
    with session_scope() as session:
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "run.resume")).all()

    assert paused["error_code"] is None and f"stops below {FLOOR}" in str(paused["error"])
    assert 0 < int(paused["chunks_done"]) < int(paused["chunks_total"]), paused  # stopped part-way
    assert shown.exit_code == 1 and "paused_budget" in shown.output and f"stops below {FLOOR}" in shown.output
    assert resumed.exit_code == 0, resumed.output
    assert "resumed" in resumed.output
    assert 0 < writes_while_paused < truth.updated
    assert final["status"] == "partially_failed" and final["error"] is None
    for key in ("planned", "invalid", "unchanged", "updated", "failed"):
        assert final[key] == getattr(truth, key), key
    assert (
        max(writes.values()) == 1 and sum(writes.values()) == truth.updated
    )  # none lost, none written twice
    assert [(e.actor, e.target, (e.before or {}).get("status")) for e in audit] == [
        ("ops-admin", f"run:{run_id}", "paused_budget")
    ]
