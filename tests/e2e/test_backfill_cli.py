"""`regsync backfill --estimate` and `--dry-run --wait` as subprocesses, a real Celery worker process on Redis,
and the TLS sandbox org and registry: the preview is printed, nothing is written, the counts are the ledger's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import RegsyncEnv
from tests.integration.backfill_world import NAME, World, open_world
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, Run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    monkeypatch.setenv("REGSYNC_BROKER_URL", redis_url)
    monkeypatch.setenv("REGSYNC_REDIS_URL", redis_url)
    monkeypatch.setenv("REGSYNC_QUEUE", f"regsync-e2e-{uuid.uuid4().hex[:8]}")
    with open_world(tmp_path / "sandbox", monkeypatch, 250, validation_failures=0) as found:
        monkeypatch.setenv("REGSYNC_SHARED_STATE", "redis")  # the worker process shares state through Redis
        found.connect(chunk_size=100)
        yield found


@pytest.fixture
def worker(world: World, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "worker.log").open("wb")
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks",
        "worker",
        "-P",
        "solo",
        "-Q",
        os.environ["REGSYNC_QUEUE"],
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
        "-l",
        "WARNING",
    ]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def regsync(*args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "worker.cli.main", *args],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=90,
        check=False,
    )


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_estimate_then_dry_run_print_their_numbers_and_write_nothing(world: World, worker: Any) -> None:
    accounts = world.stack.salesforce.accounts.values()
    big = sum(1 for a in accounts if (a.get("NumberOfEmployees") or 0) > 10)

    estimate = regsync("backfill", NAME, "--estimate", "--dry-run", "--where", "NumberOfEmployees", ">", "10")

    assert estimate.returncode == 0, estimate.stderr
    assert f"records selected: {big} (counting them cost 1 Salesforce call(s))" in estimate.stdout
    reads = -(-big // 100)
    assert (
        f"Salesforce API calls: at most {5 + 1 + reads} = 1 query + {reads} re-read + writes (none: dry run) "
        "+ 5 run-start check\n" in (estimate.stdout)
    )
    assert f"registry calls: at most {big} (one per unique valid org number, or batch)" in estimate.stdout
    assert "nothing was started" in estimate.stdout
    queries = [r.query["q"][0] for r in world.stack.salesforce.api_requests() if "q" in r.query]
    assert queries == ["SELECT COUNT() FROM Account WHERE NumberOfEmployees > 10"]

    done = regsync(
        "backfill", NAME, "--dry-run", "--wait", "--fields", "name,status,city", "--actor", "alice"
    )

    assert done.returncode in (0, 1), done.stderr  # 1: the seeded invalid org numbers make it partial
    assert "dry run: nothing was written" in done.stdout and "would update" in done.stdout
    assert [r for r in world.stack.salesforce.api_requests() if r.method == "PATCH"] == []
    with session_scope() as session:
        run_id = session.execute(select(func.max(Run.id))).scalar_one()
    shown = json.loads(regsync("runs", "show", str(run_id), "--json").stdout)
    assert shown["dry_run"] and shown["options"]["fields"] == ["name", "status", "city"]
    counts = {row["field"]: row["count"] for row in shown["field_changes"]}
    assert set(counts) <= {"Name", "Registry_Status__c", "BillingCity"} and sum(counts.values()) > 0
    for field, count in counts.items():
        assert any(field in line and f" {count} " in line for line in done.stdout.splitlines())
    assert "samples" not in shown["field_changes"][0]  # runs show: counts only
    secret = world.stack.client_secret
    assert all(secret not in text for text in (estimate.stdout, estimate.stderr, done.stdout, done.stderr))
    with session_scope() as session:
        event = session.execute(select(AuditEvent).where(AuditEvent.action == "backfill.start")).scalar_one()
    assert event.after is not None
    assert (event.actor, event.after["run_id"], event.after["dry_run"]) == ("alice", run_id, True)
