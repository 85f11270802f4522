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
SAMPLE_PARAMS = {"c": A, "run_id": "1", "alert_id": "1"}


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
