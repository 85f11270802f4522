"""Issue 10, "What was found" 1: runs that never ended, now end at once with a code, a message and an alert.

`regsync run X --wait` as a subprocess, one real ``celery worker`` process on Redis, the sweeper ticking every
second, the ledger on PostgreSQL and the TLS sandbox org and registry:

- a wrong Salesforce client secret: the planner's login is refused → the run fails with CRM_AUTH, `--wait`
  exits 1 within seconds, the ``auth_revoked`` alert opens, and the plan is not sent again;
- a run queued (as the API or the scheduler would queue it) for a connection whose secrets were never set →
  SECRET_MISSING, ``run_failed`` alert;
- a mapped field deleted in Salesforce after planning (INVALID_FIELD on the chunk's re-read) → the run fails
  with INVALID_FIELD after one re-read per chunk in flight, the other chunks are cancelled, and no further
  Salesforce call is made however long the sweeper goes on.

On main before this change each of them stayed ``queued``/``running`` for good (the `--wait` timed out).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.integration.celery_cluster import (
    Cluster,
    ClusterEnv,
    SweeperLoop,
    celery_cluster,
    cluster_env_for,
    sweeper_loop,
)
from tests.integration.faults import STAGES, FaultSwitch, salesforce_error
from tests.unit.fakes import counts
from worker.alerts.models import Alert
from worker.connections.apply import apply_connection
from worker.connections.secrets import set_secret
from worker.connections.spec import parse_spec
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger.db import session_scope
from worker.ledger.models import Chunk, Run
from worker.ledger.views import show_run
from worker.sandbox.stack import Stack, sandbox_stack
from worker.sync.runner import start_run

REPO = Path(__file__).resolve().parents[2]
CONNECTION = "hangs"
#: `--wait` must return within this (CLI start-up included); on main it never returned.
WAIT_BUDGET_S = 30.0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with sandbox_stack(tmp_path / "sandbox", 120) as started:
        yield started


@pytest.fixture
def world(env: RegsyncEnv, redis_url: str, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> ClusterEnv:
    cluster_env = cluster_env_for(env, redis_url, stack, "regsync-hang", log_level="INFO")
    cluster_env.apply(monkeypatch)
    data = stack.spec_data(CONNECTION, "proff", requests_per_second=2000, burst=200)
    data["sync"] = {"chunk_size": 20}
    with session_scope() as session:
        apply_connection(session, parse_spec(data), "test")
    return cluster_env


@pytest.fixture
def cluster(world: ClusterEnv, tmp_path: Path) -> Iterator[Cluster]:
    with celery_cluster(world, tmp_path / "workers", 1) as started:
        yield started


@pytest.fixture
def sweeper(cluster: Cluster) -> Iterator[SweeperLoop]:
    with sweeper_loop() as loop:
        yield loop


def set_secrets(stack: Stack, client_secret: str) -> None:
    with session_scope() as session:
        set_secret(session, CONNECTION, "salesforce_client_secret", client_secret, "test")
        set_secret(session, CONNECTION, "registry_token", stack.registry_token, "test")


def regsync(world: ClusterEnv, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=REPO,
        env=world.subprocess_env(),
        timeout=WAIT_BUDGET_S * 3,
        check=False,
    )
    return done, time.monotonic() - started


def newest_run() -> Run:
    with session_scope() as session:
        run = session.execute(select(Run).order_by(Run.id.desc()).limit(1)).scalar_one()
        session.expunge(run)
        return run


def open_alerts() -> set[tuple[str, str]]:
    with session_scope() as session:
        rows = session.execute(select(Alert.kind, Alert.subject).where(Alert.status != "resolved")).all()
    return {(kind, subject) for kind, subject in rows}


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def view_of(run_id: int) -> dict[str, Any]:
    with session_scope() as session:
        return show_run(session, run_id)


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
@pytest.mark.timeout(180)
def test_wrong_client_secret_fails_the_run_within_seconds_and_opens_auth_revoked(
    world: ClusterEnv, stack: Stack, sweeper: SweeperLoop
) -> None:
    set_secrets(stack, "not-the-secret")
    done, took = regsync(world, "run", CONNECTION, "--wait")

    assert done.returncode == 1, done.stdout + done.stderr
    assert took < WAIT_BUDGET_S
    print(f"wrong client secret: `run --wait` exited 1 after {took:.1f} s")
    run = newest_run()
    assert counts(run, "status", "error_code") == {"status": "failed", "error_code": "CRM_AUTH"}
    assert "invalid_client" in (run.error or "") and "secret set" in (run.error or "")
    assert "CRM_AUTH" in done.stdout and "not-the-secret" not in done.stdout + done.stderr
    assert counts(run, "planned", "chunks_total", "plan_attempts") == {
        "planned": 0,
        "chunks_total": 0,
        "plan_attempts": 1,
    }
    wait_until(lambda: ("auth_revoked", "crm") in open_alerts(), 30, "the auth_revoked alert")
    logins = sum(1 for r in stack.salesforce.requests if STAGES["token"](r))
    time.sleep(3)  # three more sweeps: nothing is resent
    assert sum(1 for r in stack.salesforce.requests if STAGES["token"](r)) == logins == 1
    assert sweeper.totals().get("plans_resent", 0) == 0 and not sweeper.errors


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
@pytest.mark.timeout(180)
def test_a_run_queued_for_a_connection_without_secrets_fails_with_secret_missing(
    world: ClusterEnv, stack: Stack, sweeper: SweeperLoop
) -> None:
    started = time.monotonic()
    run_id = start_run(CONNECTION, CeleryDispatcher(), triggered_by="api:key-1")  # what the API and tick call
    view = wait_until(
        lambda: (v := view_of(run_id))["status"] != "queued" and v["finished_at"] and v, 30, "the end"
    )
    took = time.monotonic() - started

    print(f"no secrets: run failed {took:.1f} s after it was queued")
    assert (view["status"], view["error_code"]) == ("failed", "SECRET_MISSING")
    assert "regsync secret set" in view["error"]
    assert took < WAIT_BUDGET_S
    wait_until(lambda: ("run_failed", "runs") in open_alerts(), 30, "the run_failed alert")
    shown, _ = regsync(world, "runs", "show", str(run_id))
    assert "SECRET_MISSING" in shown.stdout
    assert stack.salesforce.requests == [] and stack.registry.requests == []


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
@pytest.mark.timeout(180)
def test_invalid_field_on_the_reread_fails_the_run_once_without_resending_chunks(
    world: ClusterEnv, stack: Stack, sweeper: SweeperLoop
) -> None:
    set_secrets(stack, stack.client_secret)
    faults = FaultSwitch(stack.salesforce._server)
    faults.arm("reread", salesforce_error(400, "INVALID_FIELD", "No such column 'Legal_Form__c' on Account"))
    done, took = regsync(world, "run", CONNECTION, "--wait")

    assert done.returncode == 1, done.stdout + done.stderr
    assert took < WAIT_BUDGET_S
    print(f"INVALID_FIELD on the re-read: `run --wait` exited 1 after {took:.1f} s")
    run = newest_run()
    assert counts(run, "status", "error_code") == {"status": "failed", "error_code": "INVALID_FIELD"}
    assert "Legal_Form__c" in (run.error or "") and "mapping" in (run.error or "")
    with session_scope() as session:
        statuses = sorted(
            c.status for c in session.execute(select(Chunk).where(Chunk.run_id == run.id)).scalars()
        )
    # One worker: the first chunk met the error; the five others were cancelled without a call.
    assert statuses == ["cancelled"] * 5 + ["failed"]
    assert faults.seen["reread"] == faults.injected["reread"] == 1 and faults.seen["write"] == 0
    assert counts(run, "planned", "updated", "failed", "chunks_done", "chunks_total") == {
        "planned": 120,
        "updated": 0,
        "failed": 0,
        "chunks_done": 6,
        "chunks_total": 6,
    }
    wait_until(lambda: ("run_failed", "runs") in open_alerts(), 30, "the run_failed alert")
    calls = len(stack.salesforce.api_requests())
    time.sleep(3)  # the sweeper goes on ticking: on main it resent every chunk, forever
    assert len(stack.salesforce.api_requests()) == calls
    assert sweeper.totals().get("expired_chunks", 0) == 0 and not sweeper.errors
