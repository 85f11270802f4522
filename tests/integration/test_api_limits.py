"""The HTTP API's limits and manners: rate limit (429 + Retry-After, shared through Redis), validation,
page caps and cursors, filters, progress/ETA, health, security headers, and a 500 that reveals nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from fastapi.testclient import TestClient

from tests.conftest import claimed_redis
from tests.integration.api_world import A, World, build_world, ledger_env
from tests.unit.fakes import FakeDispatcher
from worker.api.app import create_app
from worker.api.middleware import SECURITY_HEADERS
from worker.api.throttle import MemoryThrottle, RedisThrottle, make_throttle
from worker.infra import heartbeat


@dataclass
class Env:
    world: World
    redis_url: str
    client: TestClient

    def get(self, path: str, role: str = "viewer", **kwargs: object) -> object:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.world.keys[role]}"}, **kwargs)


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with claimed_redis() as redis_url, ledger_env(REGSYNC_REDIS_URL=redis_url):
        world = build_world()
        app = create_app(throttle=MemoryThrottle(10_000), dispatcher=FakeDispatcher())
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Env(world, redis_url, client)


RUNS = f"/v1/connections/{A}/runs"


def _frozen() -> float:
    return 1_800_000_010.0  # 10 s into a window: the requests of a test never straddle two windows


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_key_over_its_rate_answers_429_with_retry_after_and_other_keys_go_on(env: Env) -> None:
    app = create_app(throttle=MemoryThrottle(3, clock=_frozen), dispatcher=FakeDispatcher())
    with TestClient(app) as client:
        statuses = [client.get(RUNS, headers=_auth(env.world.keys["viewer"])).status_code for _ in range(4)]
        limited = client.get(RUNS, headers=_auth(env.world.keys["viewer"]))
        other = client.get(RUNS, headers=_auth(env.world.keys["operator"]))
    assert statuses == [200, 200, 200, 429]
    assert limited.status_code == 429 and limited.json()["code"] == "RATE_LIMITED"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert other.status_code == 200


def test_the_redis_rate_limit_is_shared_by_every_web_process(env: Env) -> None:
    def web_process() -> TestClient:
        throttle = RedisThrottle(redis.Redis.from_url(env.redis_url), 3, clock=_frozen)
        return TestClient(create_app(throttle=throttle, dispatcher=FakeDispatcher()))

    first, second = web_process(), web_process()
    key = _auth(env.world.keys["admin"])
    statuses = [c.get(RUNS, headers=key).status_code for c in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]


def test_the_rate_limit_is_kept_in_memory_when_redis_does_not_answer() -> None:
    assert isinstance(make_throttle("redis://127.0.0.1:1/0", 5), MemoryThrottle)


def test_unknown_body_fields_are_refused_without_echoing_them(env: Env) -> None:
    response = env.client.post(
        f"/v1/connections/{A}/backfills",
        headers=_auth(env.world.keys["operator"]),
        json={"dry_run": True, "sneaky_field": "ECHO-MARKER-123"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "sneaky_field"]
    assert "ECHO-MARKER-123" not in response.text


def test_page_size_is_capped(env: Env) -> None:
    assert env.get(f"/v1/connections/{A}/runs?limit=201").status_code == 422  # type: ignore[attr-defined]
    assert env.get(f"/v1/connections/{A}/runs?limit=200").status_code == 200  # type: ignore[attr-defined]


def _walk(env: Env, path: str, limit: int) -> list[list[int | str]]:
    pages: list[list[int | str]] = []
    cursor = None
    while True:
        query = f"{path}?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        body = env.get(query).json()  # type: ignore[attr-defined]
        pages.append([item.get("id", item.get("record_id")) for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_cursor_pages_cover_every_run_once_newest_first(env: Env) -> None:
    pages = _walk(env, f"/v1/connections/{A}/runs", 2)
    ids = [run_id for page in pages for run_id in page]
    assert len(ids) == len(set(ids)) >= len(env.world.a_runs)
    assert ids == sorted(ids, reverse=True)
    assert all(len(page) == 2 for page in pages[:-1])


def test_failures_are_paginated_too(env: Env) -> None:
    pages = _walk(env, f"/v1/runs/{env.world.a_failed_run}/failures", 2)
    assert [len(page) for page in pages] == [2, 2, 1]
    assert len({r for page in pages for r in page}) == 5


def test_a_malformed_cursor_is_refused(env: Env) -> None:
    response = env.get(f"/v1/connections/{A}/runs?cursor=not-a-cursor!")
    assert response.status_code == 422  # type: ignore[attr-defined]


def test_filters_by_status_kind_and_since(env: Env) -> None:
    def ids(query: str) -> set[tuple[str, str]]:
        items = env.get(f"/v1/connections/{A}/runs?{query}").json()["items"]  # type: ignore[attr-defined]
        return {(item["status"], item["kind"]) for item in items}

    assert ids("status=failed") == {("failed", "scheduled")}
    assert {kind for _status, kind in ids("kind=backfill")} == {"backfill"}
    assert ids("since=2999-01-01T00:00:00Z") == set()
    assert env.get(f"/v1/connections/{A}/runs?since=2020-01-01T00:00:00").status_code == 422  # type: ignore[attr-defined]


def test_a_running_run_shows_chunk_progress_and_an_eta(env: Env) -> None:
    progress = env.get(f"/v1/runs/{env.world.a_queued_run}").json()["progress"]  # type: ignore[attr-defined]
    assert (progress["chunks_done"], progress["chunks_total"], progress["percent"]) == (1, 4, 25.0)
    # 1 chunk in 4 minutes, 3 to go: about 12 minutes
    assert 700 <= progress["eta_s"] <= 740 and progress["eta_at"] is not None


def test_health_needs_no_key_and_reports_missing_workers_with_503(env: Env) -> None:
    redis.Redis.from_url(env.redis_url).flushdb()
    heartbeat.beat_once(env.redis_url, "beat", "beat-1")
    degraded = env.client.get("/v1/health")
    heartbeat.beat_once(env.redis_url, "worker", "worker-1")
    healthy = env.client.get("/v1/health")
    assert degraded.status_code == 503 and degraded.json()["workers"] == {
        "ok": False,
        "alive": 0,
        "newest_age_s": None,
    }
    assert healthy.status_code == 200 and healthy.json()["status"] == "ok"
    assert (
        healthy.json()["ledger"]["ok"]
        and healthy.json()["redis"]["ok"]
        and healthy.json()["beat"]["alive"] == 1
    )


def test_every_answer_carries_the_security_headers(env: Env) -> None:
    answers = [
        env.get(f"/v1/connections/{A}/runs"),
        env.client.get(f"/v1/connections/{A}/runs"),
        env.get("/v1/runs/999999999"),
        env.get(f"/v1/connections/{A}/runs?limit=0"),
        env.client.get("/nowhere"),
        env.client.delete("/v1/alerts"),
        env.client.get("/v1/openapi.json"),
    ]
    assert [a.status_code for a in answers] == [200, 401, 404, 422, 404, 405, 200]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers[name] == value, (answer.status_code, name)
        assert answer.headers["X-Correlation-ID"]


def test_an_unexpected_error_answers_a_generic_500_with_a_correlation_id(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("SECRET-INTERNAL-DETAIL at /srv/app")

    monkeypatch.setattr("worker.api.routes.runs.page_of_runs", explode)
    response = env.get(f"/v1/connections/{A}/runs")
    assert response.status_code == 500  # type: ignore[attr-defined]
    body = response.text  # type: ignore[attr-defined]
    assert "SECRET-INTERNAL-DETAIL" not in body and "Traceback" not in body and "RuntimeError" not in body
    correlation = json.loads(body)["correlation_id"]
    assert correlation == response.headers["X-Correlation-ID"]  # type: ignore[attr-defined]
    assert response.headers["X-Frame-Options"] == "DENY"  # type: ignore[attr-defined]
    assert any(correlation == getattr(r, "correlation_id", None) for r in caplog.records)


def test_keys_record_their_last_use(env: Env) -> None:
    from worker.api.keys import list_keys
    from worker.ledger.db import session_scope

    env.get("/v1/alerts", role="admin")
    with session_scope() as session:
        used = {row["role"]: row["last_used_at"] for row in list_keys(session) if A in row["connections"]}
    assert used["admin"] is not None


def test_metrics_need_the_metrics_token_when_one_is_set(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from config.settings import reset_settings

    monkeypatch.setenv("REGSYNC_METRICS_TOKEN", "m-token-0123456789")
    reset_settings()
    try:
        assert env.client.get("/metrics").status_code == 401
        assert env.client.get("/metrics", headers=_auth("wrong")).status_code == 401
        scraped = env.client.get("/metrics", headers=_auth("m-token-0123456789"))
        assert scraped.status_code == 200 and "regsync_runs{" in scraped.text
    finally:
        monkeypatch.delenv("REGSYNC_METRICS_TOKEN")
        reset_settings()


def test_metrics_are_closed_by_default_and_open_only_when_made_public(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.settings import reset_settings

    closed = env.client.get("/metrics")
    monkeypatch.setenv("REGSYNC_METRICS_PUBLIC", "true")
    reset_settings()
    try:
        opened = env.client.get("/metrics")
    finally:
        monkeypatch.delenv("REGSYNC_METRICS_PUBLIC")
        reset_settings()
    assert closed.status_code == 401 and "regsync_runs" not in closed.text
    assert closed.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert opened.status_code == 200 and "regsync_runs{" in opened.text
