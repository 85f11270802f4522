"""One registry-pump benchmark row: a sandbox world in its own process, real workers, one run, measured.

Per row: a fresh sandbox world (``python -m bench.world_server``), a fresh ledger database and Redis DB, two
``celery worker`` processes started with the row's settings (default: none but the ledger, broker and log
level), one run started as ``regsync run`` does, and the ledger polled until it is final. Plan time is when
the ledger first says planning is complete.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.machine import REPO_ROOT
from bench.services import Services, environment
from bench.workers import celery_workers


@dataclass(frozen=True, slots=True)
class PumpSetup:
    """One row: the world's size and latencies, R, and how the workers run."""

    label: str
    accounts: int
    salesforce_latency_s: float
    rps: float = 200.0
    registry_latency_s: float = 0.05
    workers: int = 2
    pool: str = "prefork"
    worker_concurrency: int = 1
    tuned: bool = False
    memory_only: bool = False  # a row for peak memory at scale: its rate is reported, not a target
    extra_env: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 1200.0


@dataclass(frozen=True, slots=True)
class PumpResult:
    setup: PumpSetup
    view: dict[str, Any]
    wall_s: float
    plan_s: float
    registry_times: list[float]
    distinct_lookups: int
    statuses: dict[int, int]
    salesforce: dict[str, int]
    truth: dict[str, Any]
    peak_rss_mb: float


class World:
    """The world server process and its line protocol."""

    def __init__(self, setup: PumpSetup, directory: Path) -> None:
        command = [sys.executable, "-m", "bench.world_server", "--accounts", str(setup.accounts)]
        command += ["--dir", str(directory), "--rps", str(setup.rps)]
        self.popen = subprocess.Popen(
            command, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.ready = self._read()

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps(command) + "\n")
        self.popen.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.popen.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the sandbox world exited ({self.popen.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.popen.poll() is None:
            self.ask_quit()
        self.popen.wait(timeout=30)

    def ask_quit(self) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
        self.popen.stdin.close()


def _env(db_url: str, redis_url: str, ca_bundle: str, setup: PumpSetup) -> dict[str, str]:
    from worker.connections.secrets import generate_key

    return {
        "REGSYNC_DATABASE_URL": db_url,
        "REGSYNC_BROKER_URL": redis_url,
        "REGSYNC_REDIS_URL": redis_url,
        "REGSYNC_SECRET_KEY": generate_key(),
        "REGSYNC_ACTOR": "bench",
        "REGSYNC_LOG_LEVEL": "WARNING",
        "REGSYNC_REGISTRY_PUMP": "true",  # the default, stated so that the row says what it measured
        "SSL_CERT_FILE": ca_bundle,
        "REQUESTS_CA_BUNDLE": ca_bundle,
        **setup.extra_env,
    }


def _start_and_wait(name: str, setup: PumpSetup) -> tuple[dict[str, Any], float, float]:
    """Start the run like ``regsync run`` and poll the ledger: (final view, wall s, plan s)."""
    from worker.infra.dispatch import CeleryDispatcher
    from worker.ledger.db import session_scope
    from worker.ledger.models import Run, RunStatus
    from worker.ledger.views import show_run
    from worker.sync.runner import start_run

    started = time.monotonic()
    run_id = start_run(name, CeleryDispatcher(), triggered_by="bench")
    plan_s: float | None = None
    while time.monotonic() - started < setup.timeout_s:
        with session_scope() as session:
            run = session.get(Run, run_id)
            assert run is not None
            planned, status = run.planned_complete, run.status
            view = show_run(session, run_id) if RunStatus(status).final else None
        now = time.monotonic() - started
        if planned and plan_s is None:
            plan_s = now
        if view is not None:
            return view, now, plan_s if plan_s is not None else now
        time.sleep(0.05)
    raise RuntimeError(f"run {run_id} not final after {setup.timeout_s:.0f} s")


def run_pump_row(setup: PumpSetup, services: Services, workdir: Path) -> PumpResult:
    """Measure one row (see the module docstring)."""
    from worker.sandbox.demo import create_connection

    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as scope:
        world = World(setup, workdir / "world")
        scope.callback(world.close)
        ready = world.ready
        db_url = scope.enter_context(services.database("pump"))
        redis_url = scope.enter_context(services.redis_db())
        scope.enter_context(environment(_env(db_url, redis_url, ready["ca_bundle"], setup)))
        secrets = {
            "salesforce_client_secret": ready["client_secret"],
            "registry_token": ready["registry_token"],
        }
        create_connection(ready["spec_data"], secrets)
        workers = scope.enter_context(
            celery_workers(
                setup.workers, workdir / "workers", pool=setup.pool, concurrency=setup.worker_concurrency
            )
        )
        world.ask(
            {
                "cmd": "configure",
                "salesforce_latency_s": setup.salesforce_latency_s,
                "registry_latency_s": setup.registry_latency_s,
                "limit_rps": setup.rps,
            }
        )
        view, wall_s, plan_s = _start_and_wait(ready["spec_data"]["name"], setup)
        time.sleep(0.3)  # replies still being written when the ledger already said "done"
        seen = world.ask({"cmd": "report"})
        peak_mb = max(worker.peak_rss_mb() for worker in workers)
    return PumpResult(
        setup=setup,
        view=view,
        wall_s=wall_s,
        plan_s=plan_s,
        registry_times=seen["registry_times"],
        distinct_lookups=seen["registry_paths"],
        statuses={int(k): v for k, v in seen["statuses"].items()},
        salesforce=seen["salesforce"],
        truth=ready["truth"],
        peak_rss_mb=peak_mb,
    )


def load_now() -> float:
    return os.getloadavg()[0]
