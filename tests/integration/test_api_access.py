"""Issue 12, API access: no query string in the access log, failed authentications rate-limited per address,
and access anomalies (a burst of failed authentications, a key probing other tenants' ids) opened as alerts
that reach a real webhook receiver."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import claimed_redis
from tests.integration.alert_receivers import WebhookReceiver, free_port
from tests.integration.api_world import B_RUN_IDS, A, World, build_world, ledger_env
from tests.integration.test_api_body_limit import _wait_listening
from tests.unit.fakes import FakeDispatcher
from worker.alerts import access
from worker.alerts.evaluator import evaluate
from worker.alerts.models import Alert, AlertKind
from worker.api.app import create_app
from worker.api.keys import authenticate
from worker.api.throttle import RedisThrottle
from worker.ledger.db import session_scope
from worker.sandbox.tls import SandboxCA

REPO = Path(__file__).resolve().parents[2]
RUNS = f"/v1/connections/{A}/runs"
BAD_KEY = "rsk_" + "Z" * 43
SIGNING_KEY = "operator-signing-key-0123456789"


def _frozen() -> float:
    return 1_800_000_010.0  # 10 s into a window: a test's requests never straddle two windows


@dataclass
class Env:
    world: World
    redis: redis.Redis
    limit: int

    def client(self, address: str) -> TestClient:
        """A client whose requests come from ``address`` (as uvicorn would put it in the scope)."""
        app = create_app(
            throttle=RedisThrottle(self.redis, self.limit, clock=_frozen), dispatcher=FakeDispatcher()
        )
        return TestClient(app, raise_server_exceptions=False, client=(address, 40000))


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with claimed_redis() as redis_url, ledger_env(REGSYNC_REDIS_URL=redis_url):
        world = build_world()
        client = redis.Redis.from_url(redis_url)
        yield Env(world, client, 60)
        client.close()


@pytest.fixture(autouse=True)
def _fresh_counts(env: Env) -> None:
    env.redis.flushdb()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _anomalies() -> list[Alert]:
    with session_scope() as session:
        query = select(Alert).where(Alert.kind == AlertKind.ACCESS_ANOMALY.value).order_by(Alert.id)
        alerts = list(session.scalars(query))
        session.expunge_all()
        return alerts


def test_failed_authentications_over_the_limit_answer_429_and_other_addresses_go_on(env: Env) -> None:
    attacker, neighbour = env.client("203.0.113.7"), env.client("198.51.100.9")
    answers = [attacker.get(RUNS, headers=_bearer(BAD_KEY)).status_code for _ in range(env.limit + 1)]
    assert answers == [401] * env.limit + [429]
    refused = attacker.get(RUNS, headers=_bearer(env.world.keys["viewer"]))
    assert refused.status_code == 429  # refused before the key is looked at, or guessing would go on
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["content-type"] == "application/problem+json"
    assert neighbour.get(RUNS, headers=_bearer(env.world.keys["viewer"])).status_code == 200
    assert neighbour.get(RUNS, headers=_bearer(BAD_KEY)).status_code == 401


def test_fifty_failed_authentications_open_one_access_anomaly_that_reaches_a_webhook(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = SandboxCA(tmp_path / "ca")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle_path))
    receiver = WebhookReceiver(ca, SIGNING_KEY).start()
    try:
        monkeypatch.setenv("REGSYNC_OPERATOR_ALERTS_FILE", str(_operator_file(tmp_path, receiver.url)))
        attacker = env.client("192.0.2.50")
        keys = [f"rsk_{n:043d}" for n in range(env.limit + 5)]
        answers = {attacker.get(RUNS, headers=_bearer(key)).status_code for key in keys}
        assert answers == {401, 429}  # the limit (60) is above the burst (50): both kinds of refusal were met
        alerts = [a for a in _anomalies() if a.subject == "address:192.0.2.50"]
        assert len(alerts) == 1, "one alert per address while it is open"
        alert = alerts[0]
        assert alert.connection_id is None and alert.details["address"] == "192.0.2.50"
        assert alert.details["count"] == access.FAILED_AUTH_BURST
        assert alert.notify_by == alert.detected_at + dt.timedelta(minutes=60)
        report = evaluate(sinks=[])
        assert report.notified >= 1
    finally:
        receiver.stop()
    hooks = [h for h in receiver.received if h.payload["alert"]["subject"] == "address:192.0.2.50"]
    assert len(hooks) == 1 and hooks[0].signature_ok
    assert hooks[0].payload["alert"]["details"]["address"] == "192.0.2.50"
    assert hooks[0].payload["alert"]["connection"] == "(installation)"
    body = hooks[0].body.decode()
    assert not any(key in body for key in keys) and "rsk_" not in body


def _operator_file(tmp_path: Path, url: str) -> Path:
    (tmp_path / "signing.key").write_text(SIGNING_KEY + "\n")
    path = tmp_path / "operator.toml"
    path.write_text(
        'webhook_signing_key_file = "signing.key"\n\n[alerts]\nnotice_period_minutes = 60\n\n'
        f'[alerts.channels.ops]\ntype = "webhook"\nurl = "{url}"\n'
    )
    return path


def test_a_key_probing_other_tenants_run_ids_opens_an_alert_on_its_own_connection(env: Env) -> None:
    client = env.client("192.0.2.77")
    operator = _bearer(env.world.keys["operator"])
    with session_scope() as session:
        who = authenticate(session, env.world.keys["operator"])
        assert who is not None
    missing = [client.get(f"/v1/runs/{9_000_000 + n}", headers=operator) for n in range(access.PROBE_RUN * 2)]
    assert {r.status_code for r in missing} == {404}
    assert not [a for a in _anomalies() if a.subject == f"apikey:{who.key_id}"], "ids that exist nowhere"
    probes = [
        client.get(f"/v1/runs/{B_RUN_IDS[n % 2]}", headers=operator) for n in range(access.PROBE_RUN + 3)
    ]
    assert {r.status_code for r in probes} == {404}
    assert probes[0].json()["detail"] == missing[0].json()["detail"], (
        "a foreign id answers like a missing one"
    )
    alerts = [a for a in _anomalies() if a.subject == f"apikey:{who.key_id}"]
    assert len(alerts) == 1
    assert alerts[0].details["key_id"] == who.key_id and alerts[0].details["address"] == "192.0.2.77"
    assert env.world.keys["operator"] not in json.dumps(alerts[0].details)
    assert set(who.connections) == {alerts[0].connection_id}


def test_the_access_log_records_the_path_and_never_the_query_string(tmp_path: Path) -> None:
    log = tmp_path / "web.log"
    port = free_port()
    procfile = (REPO / "Procfile").read_text()
    web = next(line for line in procfile.splitlines() if line.startswith("web:"))
    command = web.removeprefix("web:").replace("${PORT:-8000}", str(port)).split()
    assert command[0] == "uvicorn"
    with ledger_env(REGSYNC_REDIS_URL="redis://127.0.0.1:1/0"), log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=REPO,
            env=dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_listening(process, port, log)
            for query in ("access_token=SECRET123", "key=SECRET123&x=1", "q=%53ECRET123"):
                _get(f"http://127.0.0.1:{port}/v1/runs?{query}")
        finally:
            process.terminate()
            process.wait(timeout=10)
    lines = log.read_text().splitlines()
    assert sum('"GET /v1/runs HTTP/1.1" 404' in line for line in lines) == 3, lines
    assert not [line for line in lines if "SECRET123" in line or "%53ECRET" in line or "?" in line]


def _get(url: str) -> None:
    httpx.get(url, timeout=5)
