"""/v1/health and `regsync health` judge beat by REGSYNC_BEAT_GRACE_S and report each process's last heartbeat.

Real Redis (the heartbeat keys as processes write them, dated back) and a migrated ledger; the API through
FastAPI's TestClient, the CLI through typer's runner (the e2e test runs it as a subprocess against real beat).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from config.settings import reset_settings
from tests.conftest import RegsyncEnv
from worker.api.app import create_app
from worker.api.throttle import MemoryThrottle
from worker.cli.main import app
from worker.infra import heartbeat

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


@pytest.fixture
def world(env: RegsyncEnv, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("REGSYNC_REDIS_URL", redis_url)
    monkeypatch.setenv("REGSYNC_BEAT_GRACE_S", "60")
    reset_settings()
    yield redis_url
    reset_settings()


def api_health() -> tuple[int, dict[str, Any]]:
    with TestClient(create_app(throttle=MemoryThrottle(100))) as client:
        answer = client.get("/v1/health")
    return answer.status_code, answer.json()


def cli_health(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["health", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout


def test_beat_silent_longer_than_its_grace_fails_both_and_says_for_how_long(world: str) -> None:
    heartbeat.beat_once(world, "beat", "beat-host:41", now=time.time() - 75)
    heartbeat.beat_once(world, "worker", "w1@host")

    status, body = api_health()
    code, text = cli_health()
    code_json, out = cli_health("--json")

    assert status == 503 and body["status"] == "degraded"
    assert body["beat"] == {"ok": False, "alive": 0, "newest_age_s": pytest.approx(75, abs=2)}
    assert body["workers"] == {"ok": True, "alive": 1, "newest_age_s": pytest.approx(0, abs=2)}
    assert code == code_json == 1
    assert "beat     FAIL    silent for 75 s (grace 60 s)" in text
    assert "beat-host:41  beat" in text and "silent" in text
    data = json.loads(out)
    assert data["grace_s"] == {"beat": 60.0, "worker": heartbeat.WORKER_GRACE_S}
    assert {(p["role"], p["name"], p["alive"]) for p in data["processes"]} == {
        ("beat", "beat-host:41", False),
        ("worker", "w1@host", True),
    }


def test_beat_within_its_own_grace_is_healthy_though_older_than_a_workers(world: str) -> None:
    heartbeat.beat_once(world, "beat", "beat-host:41", now=time.time() - 45)  # > WORKER_GRACE_S, < 60 s
    heartbeat.beat_once(world, "worker", "w1@host")

    status, body = api_health()
    code, text = cli_health()

    assert status == 200 and body["status"] == "ok"
    assert body["beat"] == {"ok": True, "alive": 1, "newest_age_s": pytest.approx(45, abs=2)}
    assert code == 0 and "regsync health: ok" in text
    assert "beat     ok      1 alive, newest heartbeat 45 s ago" in text


def test_a_beat_never_heard_from_fails_and_says_so(world: str) -> None:
    heartbeat.beat_once(world, "worker", "w1@host")
    status, body = api_health()
    code, text = cli_health()
    assert status == 503 and body["beat"] == {"ok": False, "alive": 0, "newest_age_s": None}
    assert code == 1 and "beat     FAIL    no heartbeat in the last 24 h" in text


def test_a_dead_worker_is_listed_as_silent_and_health_fails_without_a_live_one(world: str) -> None:
    heartbeat.beat_once(world, "beat", "beat-host:41")
    heartbeat.beat_once(world, "worker", "w1@host", now=time.time() - heartbeat.WORKER_GRACE_S - 5)
    status, body = api_health()
    code, out = cli_health("--json")
    assert status == 503 and body["workers"]["ok"] is False and body["beat"]["ok"] is True
    assert code == 1 and json.loads(out)["workers"]["newest_age_s"] > heartbeat.WORKER_GRACE_S
