"""Issue 3, acceptance 1: two beats and two workers on one Redis and one PostgreSQL ledger, one run per slot.

Two beat *processes* (tests/integration/beat_sim.py) call the real tick on an accelerated clock (5 simulated
minutes of an every-minute schedule in 10 s); two real ``celery worker`` processes execute the runs against the
TLS sandbox (50 Accounts). Ticking at nearly the same instants is not enough to prove a collision (one beat may
record and advance before the other looks), so each beat's insert of a slot's run waits at a Redis gate until
both beats reached it (tests/integration/insert_race.py): for every slot both inserts go to PostgreSQL together,
and the test checks that one was inserted and the other refused by the unique (connection, slot) constraint.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.integration.celery_cluster import (
    REPO_ROOT,
    ClusterEnv,
    celery_cluster,
    cluster_env_for,
    install_connection,
)
from tests.integration.insert_race import assert_collided
from worker.ledger.db import session_scope
from worker.ledger.models import Run, RunStatus
from worker.ledger.views import run_view
from worker.sandbox.stack import Stack, sandbox_stack
from worker.scheduling.store import set_enabled

UTC = dt.UTC
SPEED = 30.0  # simulated seconds per real second: a simulated minute every 2 s
SLOT_0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
START_SIM = SLOT_0 + dt.timedelta(seconds=1)
END_SIM = SLOT_0 + dt.timedelta(minutes=5, seconds=15)  # a few ticks after the last slot
SLOTS = [SLOT_0 + dt.timedelta(minutes=m) for m in range(1, 6)]
ACCOUNTS = 50
BEATS = 2


@pytest.fixture
def world(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Stack, ClusterEnv]]:
    with sandbox_stack(tmp_path / "sandbox", ACCOUNTS, validation_failures=0) as stack:
        cluster_env = cluster_env_for(env, redis_url, stack, "regsync-sched", log_level="INFO")
        cluster_env.apply(monkeypatch)
        data = stack.spec_data("nightly", "proff", requests_per_second=2000, burst=200)
        data["schedule"] = {"cron": "* * * * *", "timezone": "Europe/Oslo", "concurrency": "allow"}
        install_connection(stack, data, "alice")
        with session_scope() as session:
            set_enabled(session, "nightly", True, "alice", now=START_SIM, without_notices=True)
        yield stack, cluster_env


def start_beats(cluster_env: ClusterEnv, start_real: float, count: int) -> list[subprocess.Popen[str]]:
    """``count`` beat processes that race for every slot (each slot's insert gated until all ``count`` reach it)."""
    command = [sys.executable, "-m", "tests.integration.beat_sim", str(start_real), START_SIM.isoformat(),
               END_SIM.isoformat(), str(SPEED)]  # fmt: skip
    return [
        subprocess.Popen(
            [*command, str(seed), str(count)],
            cwd=REPO_ROOT,
            env=cluster_env.subprocess_env(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for seed in range(count)
    ]


def beat_reports(beats: list[subprocess.Popen[str]], timeout_s: float) -> list[dict[str, Any]]:
    reports = []
    for beat in beats:
        out, err = beat.communicate(timeout=timeout_s)
        assert beat.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def scheduled_runs() -> list[dict[str, Any]]:
    with session_scope() as session:
        rows = session.scalars(select(Run).order_by(Run.scheduled_for, Run.id)).all()
        return [run_view(run, "nightly") for run in rows]


def wait_until_final(timeout_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        views = scheduled_runs()
        if all(RunStatus(v["status"]).final for v in views) or time.monotonic() > deadline:
            return views
        time.sleep(0.2)


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_two_beats_racing_for_every_slot_and_two_workers_make_exactly_one_run_per_slot(
    world: tuple[Stack, ClusterEnv], tmp_path: Path
) -> None:
    stack, cluster_env = world
    truth = stack.truth(stack.spec("nightly"))

    with celery_cluster(cluster_env, tmp_path / "workers", 2):
        beats = start_beats(cluster_env, time.time() + 4.0, BEATS)  # both import first, then tick together
        reports = beat_reports(beats, timeout_s=40)
        views = wait_until_final(timeout_s=30)

    # The collision: for every slot both beats reached the insert before either sent it; PostgreSQL took one
    # and refused the other with a unique violation on (connection_id, scheduled_for).
    by_slot = assert_collided([a for r in reports for a in r["inserts"]], racers=BEATS)
    assert [dt.datetime.fromisoformat(slot) for slot in by_slot] == SLOTS
    assert {a["racer"].split("/")[0] for tries in by_slot.values() for a in tries} == {"beat0", "beat1"}
    assert sum(r["lost"] for r in reports) == len(
        SLOTS
    )  # each refusal was counted as a lost slot, not an error

    assert [dt.datetime.fromisoformat(v["scheduled_for"]) for v in views] == SLOTS
    assert {(v["kind"], v["triggered_by"]) for v in views} == {("scheduled", "schedule")}
    assert [v["status"] for v in views] == [RunStatus.SUCCEEDED.value if truth.invalid == 0 else
                                            RunStatus.PARTIALLY_FAILED.value] * len(SLOTS)  # fmt: skip
    assert all(v["planned"] == ACCOUNTS and v["not_processed"] == 0 for v in views)
    assert sum(r["started"] for r in reports) == len(SLOTS)
    assert all(r["ticks"] > 50 and r["errors"] == 0 for r in reports)
    winners = [next(a["racer"] for a in tries if a["outcome"] == "inserted") for tries in by_slot.values()]
    print(
        f"beat reports: {[{k: v for k, v in r.items() if k != 'inserts'} for r in reports]}; winners: {winners}"
    )
