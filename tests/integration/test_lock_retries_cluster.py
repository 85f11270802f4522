"""Issue 10, "What was found" 2: UNABLE_TO_LOCK_ROW is transient, so a locked record is written all the same.

Two real ``celery worker`` processes run a sandbox connection of 2,000 Accounts while another transaction holds
5% of the rows on their first write attempt (the sandbox answers UNABLE_TO_LOCK_ROW once per such record).
The Salesforce client sends those records again, alone, with backoff: every changed record ends written exactly
once (the sandbox's write log), none is listed as failed for a lock, and the counts equal the seeded truth. On
the code before issue 10 about 5% of the changed Accounts stayed unsynced and were listed as failures.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RegsyncEnv
from tests.integration.celery_cluster import (
    ClusterEnv,
    celery_cluster,
    cluster_env_for,
    install_connection,
    sweeper_loop,
)
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger.db import session_scope
from worker.ledger.views import list_failures
from worker.sandbox.stack import Stack, sandbox_stack
from worker.sync.runner import start_run, wait_for

CONNECTION = "locked"
ACCOUNTS = 2_000
LOCK_SHARE = 0.05
COUNT_KEYS = ("planned", "invalid", "unchanged", "updated", "failed")


@pytest.fixture
def world(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Stack, ClusterEnv]]:
    with sandbox_stack(tmp_path / "sandbox", ACCOUNTS) as stack:
        cluster_env = cluster_env_for(env, redis_url, stack, log_level="INFO")
        cluster_env.apply(monkeypatch)
        install_connection(stack, stack.spec_data(CONNECTION, "proff", requests_per_second=2000, burst=200))
        yield stack, cluster_env


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
@pytest.mark.timeout(150)
def test_five_percent_locked_rows_are_retried_and_each_written_once(
    world: tuple[Stack, ClusterEnv], tmp_path: Path
) -> None:
    stack, cluster_env = world
    truth = stack.truth(stack.spec(CONNECTION))
    stack.salesforce.lock_share(LOCK_SHARE, seed=10)

    with celery_cluster(cluster_env, tmp_path / "workers", 2) as cluster, sweeper_loop():
        run_id = start_run(CONNECTION, CeleryDispatcher(), triggered_by="test")
        view = wait_for(run_id, lambda _view: None, poll_s=0.2, timeout_s=120)
        output = cluster.output()

    sandbox = stack.salesforce
    locked = set(sandbox.locks_injected)
    print(
        f"{len(locked)} of {truth.updated} changed Accounts locked on their first write; run {view['duration_s']} s"
    )
    assert 0.03 * truth.updated < len(locked) < 0.08 * truth.updated  # about 5% of the written records
    # Every changed record written exactly once, the locked ones included (a locked record that then meets the
    # validation rule fails for that rule); nothing else written.
    assert locked - set(stack.validation_failures) <= set(sandbox.writes)
    assert max(sandbox.writes.values()) == 1 and sum(sandbox.writes.values()) == truth.updated
    assert {k: view[k] for k in COUNT_KEYS} == {k: getattr(truth, k) for k in COUNT_KEYS}
    with session_scope() as session:
        rows = list_failures(session, run_id, limit=100_000)
    codes = {row["error_code"] for row in rows if not row.get("notice")}  # notices: registry outcomes
    assert "UNABLE_TO_LOCK_ROW" not in {row["error_code"] for row in rows}
    assert codes == set(truth.failure_codes)
    # Each retry is a PATCH of only the locked records, and each one counts in the run's Salesforce calls.
    patches = [json.loads(r.body)["records"] for r in sandbox.api_requests() if r.method == "PATCH"]
    resent = [item["id"] for records in patches for item in records]
    assert len(resent) == truth.updated + len(truth_failed_ids(stack)) + len(locked)
    assert view["crm_calls"] == sandbox.api_calls
    assert "Traceback" not in output


def truth_failed_ids(stack: Stack) -> tuple[str, ...]:
    """Records the sandbox's validation rule refuses (sent once each, never retried)."""
    return stack.validation_failures
