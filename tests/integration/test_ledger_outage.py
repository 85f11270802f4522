"""Issue 11 item 6: the ledger's PostgreSQL stops for ~10 s in the middle of a run with real workers.

The ledger is a PostgreSQL cluster of this test's own (``initdb`` + ``pg_ctl`` on a free port, as the
``postgres`` user when we are root), so that stopping it touches nothing else on this machine. ~3,000 sandbox
Accounts go through two ``celery worker`` processes, started and watched by ``regsync run --wait --json`` in a
subprocess; once planning is complete and a few chunks are done, the cluster is stopped (fast shutdown: every
session is cut), kept down for ``OUTAGE_S`` and started again.

What must hold: chunks in flight are retried by Celery (released for their retry once the ledger answers, never
left leased for the sweeper to resend); the run ends right within the outage + 30 s with counts equal to the
sandbox's truth; the ledger's registry_calls equal the requests the sandbox registry received (the failed
attempts' calls are charged once the ledger answers); no Salesforce usage is dropped; the waiting CLI rides the
outage out and says so once.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import RegsyncEnv, service_missing
from tests.integration.celery_cluster import (
    REPO_ROOT,
    celery_cluster,
    cluster_env_for,
    install_connection,
    sweeper_loop,
)
from tests.integration.test_mass_update_cluster import (
    World,
    assert_counts_exact,
    assert_failures_listed,
    assert_sandbox_matches,
    expected_outcome,
)
from worker.ledger.db import session_scope
from worker.ledger.migrate import upgrade
from worker.ledger.models import Chunk, ChunkStatus, Run
from worker.sandbox.stack import sandbox_stack

CONNECTION = "outage"
ACCOUNTS = 3_000
OUTAGE_S = 10.0
SLACK_S = 30.0


@dataclass
class PrivateCluster:
    """A PostgreSQL cluster of this test's own: data directory, port, and how to stop and start it."""

    bin_dir: Path
    root: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        command = [*self.as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._ctl("-o", options, "-l", str(self.root / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def private_pg() -> Iterator[PrivateCluster]:
    """initdb + pg_ctl start on a free port; stopped (immediately) and removed afterwards."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        service_missing("no initdb/pg_ctl on this machine: cannot start a PostgreSQL cluster to stop")
    root = Path(tempfile.mkdtemp(prefix="regsync-outage-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: the cluster belongs to the postgres user
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    initdb = [*as_user, str(bin_dir / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres"]
    subprocess.run(initdb, check=True, capture_output=True, timeout=120)
    cluster = PrivateCluster(bin_dir, root, _free_port(), as_user)
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def migrated_url(private_pg: PrivateCluster) -> str:
    """The ``env`` fixture's ledger: the private cluster, migrated (overrides tests/conftest.py's)."""
    upgrade(private_pg.url)
    return private_pg.url


def progress(run_id: int) -> tuple[bool, int, int]:
    """(planning complete, chunks done, chunks planned) of the run."""
    with session_scope() as session:
        run = session.get(Run, run_id)
        done = session.execute(
            select(func.count()).select_from(Chunk).where(Chunk.status == ChunkStatus.DONE.value)
        ).scalar_one()
        return bool(run and run.planned_complete), int(done), int(run.chunks_total if run else 0)


def newest_run_id(deadline: float) -> int:
    while time.monotonic() < deadline:
        with session_scope() as session:
            run_id = session.scalar(select(Run.id).order_by(Run.id.desc()).limit(1))
        if run_id is not None:
            return int(run_id)
        time.sleep(0.05)
    pytest.fail("the CLI never started a run")


@pytest.mark.timeout(240)
def test_a_ledger_outage_mid_run_costs_only_its_length(
    env: RegsyncEnv,
    private_pg: PrivateCluster,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with sandbox_stack(tmp_path / "sandbox", ACCOUNTS) as stack:
        world_env = cluster_env_for(
            env,
            redis_url,
            stack,
            "regsync-outage",
            chunk_lease_s=60,  # a lease longer than the outage, as in production (300 s)
            requeue_after_s=60,
            log_level="INFO",
        )
        world_env.apply(monkeypatch)
        data = stack.spec_data(CONNECTION, "proff", requests_per_second=2000, burst=200)
        data["sync"] = {"chunk_size": 100}
        spec = install_connection(stack, data)
        originals = {a["Id"]: copy.deepcopy(dict(a)) for a in stack.dataset.accounts}
        world = World(stack, spec, world_env, originals, tmp_path)

        with celery_cluster(world_env, tmp_path / "workers", 2) as cluster, sweeper_loop() as sweeper:
            cli = subprocess.Popen(
                [sys.executable, "-m", "worker.cli.main", "run", CONNECTION, "--wait", "--json"],
                cwd=REPO_ROOT,
                env=world_env.subprocess_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
            )
            run_id = newest_run_id(time.monotonic() + 60)
            deadline = time.monotonic() + 90
            while True:
                planned, done, total = progress(run_id)
                if planned and done >= 3:
                    break
                assert time.monotonic() < deadline, "the run never got going"
                time.sleep(0.02)
            assert done < total - 5, f"the run was almost over before the outage ({done} of {total} chunks)"

            stopped_at = time.monotonic()
            private_pg.stop("fast")  # every session is cut, as when the database restarts or fails over
            time.sleep(OUTAGE_S)
            private_pg.start()
            outage_s = time.monotonic() - stopped_at

            output, errors = cli.communicate(timeout=OUTAGE_S + SLACK_S + 60)
            ended_after_s = time.monotonic() - stopped_at
            sweeps = sweeper.totals()
        worker_output = cluster.output()

    # The CLI rode the outage out, said so once, and printed the finished run.
    assert cli.returncode == 1, (cli.returncode, errors[-2000:])  # partially_failed, like every sandbox run
    assert errors.count("waiting for it to answer") == 1, errors[-2000:]
    assert "cannot use the ledger database" in errors
    view = json.loads(output)
    assert view["id"] == run_id

    # It ended right, soon after the ledger came back, with nothing lost or written twice.
    assert ended_after_s <= outage_s + SLACK_S, (ended_after_s, outage_s)
    assert_counts_exact(world, view)
    outcome = expected_outcome(world)
    assert_sandbox_matches(world, outcome)
    assert_failures_listed(world, outcome, run_id)
    assert view["registry_calls"] == len(stack.registry.requests), (
        view["registry_calls"],
        len(stack.registry.requests),
    )

    # Chunks in flight were retried by Celery, not resent by the sweeper after their lease; no usage was dropped.
    assert sweeps.get("expired_chunks", 0) == 0, sweeps
    assert "usage not recorded" not in worker_output
    assert "Traceback" not in worker_output
    retried = worker_output.count("chunk released for retry")
    print(
        f"ledger down {outage_s:.1f} s at chunk {done}/{total}: run over {ended_after_s:.1f} s after the stop; "
        f"{retried} chunk attempts released for retry; sweeper {sweeps}"
    )


def test_the_private_cluster_stops_and_starts(private_pg: PrivateCluster) -> None:
    """The fixture itself: a stopped cluster refuses connections, a started one answers (and 5432 is untouched)."""
    import psycopg

    def answers() -> bool:
        try:
            with psycopg.connect(host="127.0.0.1", port=private_pg.port, user="postgres", connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    assert answers()
    private_pg.stop()
    assert not answers()
    private_pg.start()
    assert answers()
    assert private_pg.port != 5432
