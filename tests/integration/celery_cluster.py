"""Helpers (not a test module) that run real Celery worker *processes* and a sweeper loop for a test.

Workers: ``python -m celery -A tasks worker --pool prefork --concurrency 1 -Q <REGSYNC_QUEUE of this test>``, each in
its own process group (so SIGKILL of the group takes the prefork parent and its child together, like a
machine losing a container), with stdout/stderr captured to files that tests search for secrets. A worker is
ready when its log says ``ready.``; :meth:`Cluster.stop` sends SIGTERM, then SIGKILL after a grace period.

Sweeper: :class:`SweeperLoop` is a thread in the test process that calls :func:`worker.sync.sweeper.sweep` with a
:class:`~worker.infra.dispatch.CeleryDispatcher` every second. In production ``celery beat`` sends the same
``regsync.sweep`` task every 30 s; calling the function directly keeps the recovery path identical (ledger
leases → resend through Redis → a worker claims by compare-and-set) without beat's 30 s tick or another process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from worker.connections.spec import ConnectionSpec
    from worker.sandbox.stack import Stack

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_MARK = "ready."
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class ClusterEnv:
    """The ``REGSYNC_*`` world shared by the test process, the CLI subprocesses and the worker processes."""

    database_url: str
    redis_url: str
    secret_key: str
    ca_bundle: Path
    queue: str
    chunk_lease_s: int = 10
    requeue_after_s: int = 10
    log_level: str = "DEBUG"
    log_format: str = "json"
    #: REGSYNC_REGISTRY_PUMP (on by default, as in production; a test of chunks fetching alone turns it off).
    registry_pump: bool = True

    def variables(self) -> dict[str, str]:
        """Every variable this world sets (the CA bundle for requests, httpx and ssl alike)."""
        bundle = str(self.ca_bundle)
        return {
            "REGSYNC_DATABASE_URL": self.database_url,
            "REGSYNC_BROKER_URL": self.redis_url,
            "REGSYNC_REDIS_URL": self.redis_url,
            "REGSYNC_SECRET_KEY": self.secret_key,
            "REGSYNC_QUEUE": self.queue,
            "REGSYNC_CHUNK_LEASE_S": str(self.chunk_lease_s),
            "REGSYNC_CHUNK_REQUEUE_AFTER_S": str(self.requeue_after_s),
            "REGSYNC_LOG_LEVEL": self.log_level,
            "REGSYNC_LOG_FORMAT": self.log_format,
            "REGSYNC_REGISTRY_PUMP": "true" if self.registry_pump else "false",
            "SSL_CERT_FILE": bundle,
            "REQUESTS_CA_BUNDLE": bundle,
        }

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        """os.environ without any foreign ``REGSYNC_*`` value, plus this world's variables."""
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("REGSYNC_") or k.startswith("REGSYNC_TEST")
        }
        return {**base, **self.variables(), "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **extra}

    def apply(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point this test process at the world and forget every cached setting, engine and Celery app."""
        for name, value in self.variables().items():
            monkeypatch.setenv(name, value)
        reset_process_caches()


def reset_process_caches() -> None:
    """Settings, engines and the Celery app are cached per process; drop them after the environment changed."""
    from config.celery import reset_app
    from config.settings import reset_settings
    from worker.ledger.db import reset_engines

    reset_settings()
    reset_engines()
    reset_app()


@dataclass
class WorkerProcess:
    """One ``celery worker`` process group and the files its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        """Everything the worker printed so far (stdout then stderr)."""
        return "".join(
            p.read_text("utf-8", "replace") for p in (self.stdout_path, self.stderr_path) if p.exists()
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the whole process group (prefork parent and pool children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the group and reap the parent: no shutdown handler runs, unacked messages stay unacked."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait(timeout=STOP_GRACE_S)

    def stop(self) -> None:
        """SIGTERM to the parent (warm shutdown: the running task finishes), then SIGKILL whatever is left."""
        if self.alive():
            # Not to the group: a pool child that gets SIGTERM itself dies mid-task (WorkerLostError).
            self.popen.send_signal(signal.SIGTERM)
            self.signal_group(signal.SIGCONT)  # a worker a test froze (SIGSTOP) must wake up to hear it
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=STOP_GRACE_S)
        self.signal_group(signal.SIGKILL)  # pool children left behind by a parent that exited
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=STOP_GRACE_S)


@dataclass
class Cluster:
    """Worker processes of one test, all consuming the test's own queue."""

    env: ClusterEnv
    directory: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start(self, count: int, *, ready_timeout_s: float = 30.0) -> list[WorkerProcess]:
        """Start ``count`` workers and wait until each one logged that it is ready."""
        started = [self._spawn(f"w{len(self.workers) + i}") for i in range(count)]
        self.workers.extend(started)
        for worker in started:
            wait_until_ready(worker, ready_timeout_s)
        return started

    def _spawn(self, name: str) -> WorkerProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        out, err = self.directory / f"{name}.stdout.log", self.directory / f"{name}.stderr.log"
        command = [
            sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "prefork", "--concurrency", "1",
            "-Q", self.env.queue, "-n", f"{name}-{self.env.queue}@%h", "--without-mingle", "--without-gossip",
            "--loglevel", self.env.log_level,
        ]  # fmt: skip
        with out.open("wb") as stdout, err.open("wb") as stderr:
            popen = subprocess.Popen(
                command, cwd=REPO_ROOT, env=self.env.subprocess_env(), stdout=stdout, stderr=stderr,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        return WorkerProcess(name, popen, out, err)

    def output(self) -> str:
        """Every worker's output, for secret searches."""
        return "\n".join(worker.output() for worker in self.workers)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


def wait_until_ready(worker: WorkerProcess, timeout_s: float) -> None:
    """Block until ``worker`` logged ``ready.``; fail with its output if it died or took too long."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if READY_MARK in worker.output():
            return
        if not worker.alive():
            pytest.fail(
                f"celery worker {worker.name} exited with {worker.popen.returncode}:\n{worker.output()[-4000:]}"
            )
        time.sleep(0.1)
    pytest.fail(f"celery worker {worker.name} not ready after {timeout_s} s:\n{worker.output()[-4000:]}")


@contextlib.contextmanager
def celery_cluster(env: ClusterEnv, directory: Path, count: int) -> Iterator[Cluster]:
    """``count`` ready workers for the length of the block; every one is stopped afterwards, whatever happened."""
    cluster = Cluster(env, directory)
    try:
        cluster.start(count)
        yield cluster
    finally:
        cluster.stop()


class SweeperLoop(threading.Thread):
    """Calls the sweeper every ``interval_s`` through the real dispatcher, like beat's ``regsync.sweep`` tick."""

    def __init__(self, interval_s: float = 1.0) -> None:
        super().__init__(name="test-sweeper", daemon=True)
        self.interval_s = interval_s
        self.reports: list[dict[str, int]] = []
        self.errors: list[BaseException] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        from worker.infra.dispatch import CeleryDispatcher
        from worker.sync.sweeper import sweep

        dispatcher = CeleryDispatcher()
        while not self._stop_event.wait(self.interval_s):
            try:
                self.reports.append(sweep(dispatcher).as_dict())
            except Exception as exc:  # keep sweeping, and let the test report it
                self.errors.append(exc)

    def totals(self) -> dict[str, int]:
        """Sums of every sweep's report."""
        totals: dict[str, int] = {}
        for report in list(self.reports):
            for key, value in report.items():
                totals[key] = totals.get(key, 0) + value
        return totals

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


@contextlib.contextmanager
def sweeper_loop(interval_s: float = 1.0) -> Iterator[SweeperLoop]:
    """A running :class:`SweeperLoop`, stopped afterwards."""
    loop = SweeperLoop(interval_s)
    loop.start()
    try:
        yield loop
    finally:
        loop.stop()


def unique_queue(prefix: str = "regsync-t") -> str:
    """A queue name no other test (or test run) consumes."""
    return f"{prefix}-{os.getpid()}-{os.urandom(3).hex()}"


def cluster_env_for(
    env: Any, redis_url: str, stack: Stack, queue_prefix: str = "regsync-t", **settings: Any
) -> ClusterEnv:
    """The world of a cluster test: ``env``'s ledger and secret key, Redis, the sandbox's CA, a queue of its own."""
    return ClusterEnv(
        database_url=env.database_url,
        redis_url=redis_url,
        secret_key=env.secret_key,
        ca_bundle=stack.ca.bundle_path,
        queue=unique_queue(queue_prefix),
        **settings,
    )


def install_connection(stack: Stack, data: dict[str, Any], actor: str = "test") -> ConnectionSpec:
    """Apply a connection file's ``data`` and store the sandbox's Salesforce secret and registry token for it."""
    from worker.connections.apply import apply_connection
    from worker.connections.secrets import set_secret
    from worker.connections.spec import parse_spec
    from worker.ledger.db import session_scope

    spec = parse_spec(data)
    with session_scope() as session:
        apply_connection(session, spec, actor)
    with session_scope() as session:
        set_secret(session, spec.name, "salesforce_client_secret", stack.client_secret, actor)
        set_secret(session, spec.name, "registry_token", stack.registry_token, actor)
    return spec
