"""Issue 12's hostile edges of the HTTP API, walked over every route the app has: no redirect off-site, and
every error answered as ``application/problem+json``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from tests.integration.api_world import A, World, build_world, ledger_env
from tests.unit.fakes import FakeDispatcher
from worker.api.app import create_app
from worker.api.throttle import MemoryThrottle

#: A value for each path parameter of the API, so that every route can be called.
SAMPLE_PARAMS = {"c": A, "run_id": "1", "alert_id": "1", "match_id": "1"}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # parameters filled in


@dataclass
class Env:
    world: World
    app: FastAPI
    client: TestClient


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with ledger_env(REGSYNC_REDIS_URL="redis://127.0.0.1:1/0"):
        world = build_world()
        app = create_app(throttle=MemoryThrottle(10_000), dispatcher=FakeDispatcher())
        with TestClient(app, raise_server_exceptions=False, base_url="http://api.internal") as client:
            yield Env(world, app, client)


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every (method, path) the app routes, HEAD aside, with sample path parameters."""
    found = []
    for route in iter_route_contexts(app.routes):
        path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS[m.group(1)], route.path or "")
        found += [Endpoint(m, path) for m in sorted(getattr(route, "methods", None) or ()) if m != "HEAD"]
    return found


def test_every_route_is_walked(env: Env) -> None:
    walked = {(e.method, e.path) for e in endpoints(env.app)}
    assert ("POST", f"/v1/connections/{A}/backfills") in walked and ("GET", "/metrics") in walked
    assert len(walked) >= 12


def test_no_answer_redirects_off_site_whatever_the_host_header(env: Env) -> None:
    headers = {"Host": "evil.example", "Authorization": f"Bearer {env.world.keys['admin']}"}
    for endpoint in endpoints(env.app):
        for path in (endpoint.path + "/", endpoint.path.rstrip("/") + "//", endpoint.path):
            answer = env.client.request(endpoint.method, path, headers=headers, follow_redirects=False)
            location = answer.headers.get("location")
            assert location is None or not urlsplit(location).netloc, (endpoint, path, location)
            assert "evil.example" not in answer.text, (endpoint, path)


def _bad_requests(env: Env, endpoint: Endpoint) -> list[tuple[str, str, dict[str, str], bytes | None]]:
    """Requests that must fail at ``endpoint``: wrong method, no key, a non-JSON or an oversized body, a bad id."""
    admin = {"Authorization": f"Bearer {env.world.keys['admin']}"}
    other = "DELETE" if endpoint.method != "DELETE" else "PUT"
    bad_id = re.sub(r"/(runs|alerts)/1\b", r"/\1/not-a-number", endpoint.path)
    return [
        (other, endpoint.path, admin, None),
        (endpoint.method, endpoint.path, {}, None),
        (endpoint.method, endpoint.path, {**admin, "Content-Type": "text/plain"}, b"enabled=yes"),
        (endpoint.method, endpoint.path, {**admin, "Content-Type": "application/json"}, b"{" * 2_000_000),
        (endpoint.method, bad_id + "?limit=0&since=yesterday", admin, None),
    ]


def test_every_error_answer_of_every_route_is_problem_json(env: Env) -> None:
    seen: dict[tuple[str, str], set[int]] = {}
    for endpoint in endpoints(env.app):
        for method, path, headers, body in _bad_requests(env, endpoint):
            answer = env.client.request(method, path, headers=headers, content=body)
            if answer.status_code < 400 or (endpoint.path == "/v1/health" and answer.status_code == 503):
                continue  # a success, or health's own status document
            seen.setdefault((endpoint.method, endpoint.path), set()).add(answer.status_code)
            assert answer.headers["content-type"] == "application/problem+json", (method, path, answer.text)
            problem = answer.json()
            assert {"type", "title", "status", "detail", "instance", "code", "correlation_id"} <= set(problem)
            assert problem["status"] == answer.status_code
            assert problem["correlation_id"] == answer.headers["X-Correlation-ID"]
    assert {(e.method, e.path) for e in endpoints(env.app)} <= set(seen)  # every route gave an error
    assert {401, 405, 413, 415, 422} <= set().union(*seen.values())


def test_a_body_that_is_not_json_is_415_not_422(env: Env) -> None:
    answer = env.client.patch(
        f"/v1/connections/{A}/settings",
        headers={"Authorization": f"Bearer {env.world.keys['admin']}", "Content-Type": "text/plain"},
        content=b'{"enabled": true}',
    )
    assert answer.status_code == 415 and answer.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize("value", ["yes", "true", 1, "on"])
def test_booleans_in_request_bodies_are_strict(env: Env, value: object) -> None:
    admin = {"Authorization": f"Bearer {env.world.keys['admin']}"}
    settings = env.client.patch(f"/v1/connections/{A}/settings", headers=admin, json={"enabled": value})
    backfill = env.client.post(f"/v1/connections/{A}/backfills", headers=admin, json={"dry_run": value})
    assert (settings.status_code, backfill.status_code) == (422, 422), (settings.text, backfill.text)
    assert settings.json()["errors"][0]["loc"] == ["body", "enabled"]
    enabled = env.client.get(f"/v1/connections/{A}/settings", headers=admin).json()["enabled"]
    assert enabled is False


def test_the_openapi_document_publishes_errors_as_problem_json(env: Env) -> None:
    document = env.client.get("/v1/openapi.json").json()
    answers = [
        a for ops in document["paths"].values() for op in ops.values() for a in op["responses"].items()
    ]
    errors = [content for status, a in answers if status[0] in "45" for content in a.get("content", {})]
    assert errors and set(errors) == {"application/problem+json"}
