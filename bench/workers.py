"""Real ``celery worker`` processes for a benchmark: started on the bench's Redis DB, stopped afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.machine import REPO_ROOT

STOP_GRACE_S = 15.0


@dataclass
class WorkerProcess:
    """One ``celery worker`` process group (prefork parent + its pool child) and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text("utf-8", "replace")[-chars:] if self.log_path.exists() else ""

    def terminate(self) -> None:
        """Ask for a warm shutdown (SIGTERM to the group)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM the group (warm shutdown), SIGKILL whatever is left after the grace period."""
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=STOP_GRACE_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=STOP_GRACE_S)

    def peak_rss_mb(self) -> float:
        """The largest peak RSS of this worker's processes (a pool child runs the tasks and the pump)."""
        return group_peak_rss_mb(self.popen.pid)

    def cpu_s(self) -> float:
        """CPU seconds used so far by the live processes of this worker's group (parent and pool child)."""
        return group_cpu_s(self.popen.pid)


def group_peak_rss_mb(pgid: int) -> float:
    """The largest peak resident set (VmHWM) of any live process in process group ``pgid``, in MB."""
    peak = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            in_group = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid
            status = (entry / "status").read_text() if in_group else ""
        except OSError:
            continue  # exited meanwhile
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
    return peak / 1024


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid`` (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp … utime(11) stime(12)
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def _spawn(
    name: str, queue: str, directory: Path, env: Mapping[str, str], *, pool: str, concurrency: int
) -> WorkerProcess:
    log_path = directory / f"{name}.log"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "-Q",
        queue,
        "-n",
        f"{name}@%h",
        "--without-mingle",
        "--without-gossip",
        "--loglevel",
        "WARNING",
    ]
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return WorkerProcess(name, popen, log_path)


def _wait_ready(workers: list[WorkerProcess], timeout_s: float) -> None:
    """Until every worker answers a broadcast ping (works whatever the log level)."""
    from config.celery import get_app

    app = get_app()
    wanted = {worker.name for worker in workers}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for worker in workers:
            if not worker.alive():
                raise RuntimeError(f"celery worker {worker.name} exited:\n{worker.log_tail()}")
        replies = app.control.ping(timeout=0.5)
        answered = {name.split("@", 1)[0] for reply in replies for name in reply}
        if wanted <= answered:
            return
    raise RuntimeError(f"celery workers {sorted(wanted)} not ready after {timeout_s} s")


@contextlib.contextmanager
def celery_workers(
    count: int,
    directory: Path,
    *,
    queue: str = "regsync",
    env: Mapping[str, str] | None = None,
    pool: str = "prefork",
    concurrency: int = 1,
    ready_timeout_s: float = 60.0,
) -> Iterator[list[WorkerProcess]]:
    """``count`` ready ``celery worker`` processes (``--pool prefork --concurrency 1`` by default)."""
    directory.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{os.urandom(2).hex()}"
    workers = [
        _spawn(f"bench{i}-{tag}", queue, directory, env or {}, pool=pool, concurrency=concurrency)
        for i in range(count)
    ]
    try:
        _wait_ready(workers, ready_timeout_s)
        yield workers
    finally:
        for worker in workers:
            worker.terminate()  # all at once: shutdowns overlap
        for worker in workers:
            worker.stop()
