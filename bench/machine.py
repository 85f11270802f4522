"""What the benchmarks ran on: CPUs, memory, Python, PostgreSQL and Redis versions, date, commit."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

import psycopg
import redis

REPO_ROOT = Path(__file__).resolve().parents[1]


def _meminfo_gib() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head


def _postgres_version(admin_dsn: str) -> str:
    try:
        with psycopg.connect(admin_dsn, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0]}" if row else "unknown"
    except psycopg.Error as exc:
        return f"unavailable ({type(exc).__name__})"


def _redis_version(url: str) -> str:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        try:
            return f"Redis {client.info('server')['redis_version']}"
        finally:
            client.close()
    except redis.RedisError as exc:
        return f"unavailable ({type(exc).__name__})"


def describe_machine(admin_dsn: str, redis_url: str) -> dict[str, str]:
    """The facts RESULTS.md records about this machine and this checkout."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(cpus),
        "cpu": _cpu_model(),
        "RAM": _meminfo_gib(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "PostgreSQL": _postgres_version(admin_dsn),
        "Redis": _redis_version(redis_url),
        "commit": _git_commit(),
    }
