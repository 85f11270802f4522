"""Issue 10, acceptance 7: with beat stopped, /v1/health and `regsync health` fail within beat's grace and the
heartbeat receiver stops getting pings; restarting beat restores both.

A real ``celery -A tasks beat`` process (Redis broker of the test's own, a SQLite ledger migrated to head) pings a
local receiver (plain HTTP on 127.0.0.1, a random token path like a Healthchecks.io URL) every second. The API
answers through FastAPI's TestClient in the test process, `regsync health` runs as a subprocess. The workers'
heartbeat comes from a heartbeat thread in the test process (the check is about beat; workers stay healthy).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config.settings import reset_settings
from tests.conftest import RegsyncEnv
from tests.integration.heartbeat_receiver import Receiver, heartbeat_receiver
from worker.api.app import create_app
from worker.api.throttle import MemoryThrottle
from worker.infra import heartbeat

REPO = Path(__file__).resolve().parents[2]
GRACE_S = 15  # the smallest REGSYNC_BEAT_GRACE_S allowed: beat writes its heartbeat every 10 s
PING_INTERVAL_S = 1.0

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)  # beat never reads the ledger


@dataclass
class World:
    environ: dict[str, str]
    receiver: Receiver
    directory: Path
    api: TestClient


@pytest.fixture
def world(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    settings = {
        "REGSYNC_REDIS_URL": redis_url,
        "REGSYNC_BROKER_URL": redis_url,
        "REGSYNC_QUEUE": f"regsync-watchdog-{os.getpid()}",
        "REGSYNC_BEAT_GRACE_S": str(GRACE_S),
        "REGSYNC_HEARTBEAT_INTERVAL_S": str(PING_INTERVAL_S),
        "REGSYNC_LOG_LEVEL": "DEBUG",
        "REGSYNC_LOG_FORMAT": "json",
    }
    with heartbeat_receiver() as receiver:
        settings["REGSYNC_HEARTBEAT_URL"] = receiver.url
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        reset_settings()
        workers = heartbeat.HeartbeatThread(redis_url, "worker", "w1@test", interval_s=2.0)
        workers.start()
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
        with TestClient(create_app(throttle=MemoryThrottle(10_000))) as api:
            yield World(environ, receiver, tmp_path, api)
        workers.stop()
        reset_settings()


@contextlib.contextmanager
def beat(world: World, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A tasks beat`` in its own process group; SIGKILLed afterwards if still running."""
    command = [sys.executable, "-m", "celery", "-A", "tasks", "beat", "--loglevel", "DEBUG"]
    command += ["--schedule", str(world.directory / "celerybeat-schedule")]
    with (world.directory / f"{name}.log").open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=world.environ, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def stop(process: subprocess.Popen[bytes]) -> float:
    """SIGTERM (what honcho, systemd and Kubernetes send); the monotonic time beat had exited."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) is not None
    return time.monotonic()


def cli_health(world: World) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", "health", "--json"],
        cwd=world.directory, env=world.environ, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def api_health(world: World) -> tuple[int, dict[str, Any]]:
    answer = world.api.get("/v1/health")
    return answer.status_code, answer.json()


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float, log: Path) -> float:
    """Poll ``condition`` twice a second; the monotonic time it first held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; beat log:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return time.monotonic()


def healthy(world: World) -> bool:
    status, body = api_health(world)
    return status == 200 and body["beat"]["alive"] == 1


def test_stopping_beat_fails_health_within_its_grace_and_stops_the_pings_restarting_restores_both(
    world: World,
) -> None:
    receiver, first_log, second_log = (
        world.receiver,
        world.directory / "beat-1.log",
        world.directory / "beat-2.log",
    )
    with beat(world, "beat-1") as first:
        wait_until(
            "pings and a healthy beat", lambda: receiver.count() >= 3 and healthy(world), 60, first_log
        )
        assert cli_health(world)[0] == 0
        gaps = [b - a for a, b in zip(receiver.pings, receiver.pings[1:], strict=False)]
        assert 0.8 <= sum(gaps) / len(gaps) <= 1.3 and max(gaps) < 3, gaps  # every second, not at 30 s ticks
        stopped = stop(first)

    failed = wait_until("health to fail", lambda: api_health(world)[0] == 503, GRACE_S + 5, first_log)
    status, body = api_health(world)
    code, report = cli_health(world)
    assert failed - stopped <= GRACE_S + 1.0, f"health failed {failed - stopped:.1f} s after beat stopped"
    assert status == 503 and body["beat"]["ok"] is False and body["workers"]["ok"] is True
    assert body["beat"]["newest_age_s"] > GRACE_S
    assert code == 1 and report["beat"]["ok"] is False and report["grace_s"]["beat"] == GRACE_S
    assert [p["alive"] for p in report["processes"] if p["role"] == "beat"] == [False]
    assert receiver.since(stopped) == [], "the receiver still got pings after beat stopped"
    silent_pings = receiver.count()

    with beat(world, "beat-2") as second:
        restarted = time.monotonic()
        restored = wait_until(
            "pings and health again",
            lambda: receiver.count() > silent_pings and healthy(world),
            60,
            second_log,
        )
        code, report = cli_health(world)
        assert code == 0 and report["status"] == "ok" and report["beat"]["alive"] == 1
        print(f"\nhealth failed {failed - stopped:.1f} s after beat stopped (grace {GRACE_S} s); "
              f"restored {restored - restarted:.1f} s after restart")  # fmt: skip
        stop(second)

    logs = first_log.read_text() + second_log.read_text()
    assert "dead-man's switch: pinging http://127.0.0.1:" in logs
    assert receiver.token not in logs  # the URL's secret path never reaches beat's log
