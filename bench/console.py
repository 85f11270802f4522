"""Benchmark 8: web console page render time on a big ledger (PostgreSQL, issue 17).

The ledger of benchmark 5 (100,000 runs, 5,000,000 chunk rows, bulk-loaded with generate_series) behind the real
web app, called in-process through its ASGI interface (Starlette's TestClient): every middleware, the session
lookup, the scope check, the queries and the Jinja2 rendering, without a socket. A signed-in operator key sees
all 20 connections; each sample asks for one connection's runs list or one random run's page.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.ledger import percentile
from bench.ledger_load import CONNECTIONS, load
from bench.report import Section
from bench.services import Services, environment

P95_LIMIT_MS = 100.0


@dataclass(frozen=True, slots=True)
class PageTiming:
    name: str
    samples: int
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class ConsoleResult:
    runs: int
    chunks: int
    load_s: float
    timings: list[PageTiming]


def _prepare(services: Services, db_url: str, runs: int, chunks: int, say: Callable[[str], None]) -> float:
    from worker.ledger.db import get_engine
    from worker.ledger.migrate import upgrade

    upgrade(db_url)
    with get_engine().connect() as connection:
        seconds = load(connection, runs, chunks, say)
    with psycopg.connect(services.dsn(db_url.rsplit("/", 1)[1]), autocommit=True) as admin:
        admin.execute("VACUUM ANALYZE")
    return seconds


def _signed_in_client() -> object:
    """A TestClient on a fresh app, signed in with an operator key scoped to every bench connection."""
    from fastapi.testclient import TestClient

    from worker.api.app import create_app
    from worker.api.keys import create_key
    from worker.api.throttle import MemoryThrottle
    from worker.infra.dispatch import CeleryDispatcher
    from worker.ledger.db import session_scope
    from worker.roles import Role

    names = [f"bench-{n:02d}" for n in range(1, CONNECTIONS + 1)]
    with session_scope() as session:
        key = create_key(session, connections=names, role=Role.OPERATOR, actor="bench")
    client = TestClient(
        create_app(throttle=MemoryThrottle(10**9), dispatcher=CeleryDispatcher()),
        base_url="http://localhost",
        follow_redirects=False,
    )
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/login").text)
    assert token is not None
    signed_in = client.post("/console/login", data={"api_key": key.secret, "csrf": token.group(1)})
    assert signed_in.status_code == 303, signed_in.text[:300]
    return client


def _time(name: str, paths: Callable[[], str], client: object, samples: int) -> PageTiming:
    get = client.get  # type: ignore[attr-defined]
    for _ in range(5):
        assert get(paths()).status_code == 200
    timings = []
    for _ in range(samples):
        path = paths()
        started = time.perf_counter()
        answer = get(path)
        timings.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return PageTiming(
        name, samples, round(statistics.median(timings), 2), round(percentile(timings, 0.95), 2),
        round(max(timings), 2),
    )  # fmt: skip


def run_console(
    runs: int,
    chunks: int,
    samples: int,
    services: Services,
    workdir: Path,
    *,
    say: Callable[[str], None] = print,
) -> ConsoleResult:
    """Load a throwaway ledger and time the runs list and a run page ``samples`` times each."""
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(17)
    variables = {
        "REGSYNC_LOG_LEVEL": "WARNING",
        "REGSYNC_SHARED_STATE": "local",
        "REGSYNC_BROKER_URL": "memory://",
    }
    with services.database("console") as db_url, environment({"REGSYNC_DATABASE_URL": db_url, **variables}):
        load_s = _prepare(services, db_url, runs, chunks, say)
        client = _signed_in_client()
        pages = {
            "runs list (/console/connections/{c}/runs, 50 newest)": lambda: (
                f"/console/connections/bench-{rng.randint(1, CONNECTIONS):02d}/runs"
            ),
            "run page (/console/runs/{id}: counts, progress, failures by code)": lambda: (
                f"/console/runs/{rng.randint(1, runs)}"
            ),
            "connections page (every connection's card; not a target)": lambda: "/console/connections",
        }
        timings = [_time(name, path, client, samples) for name, path in pages.items()]
        return ConsoleResult(runs, chunks, round(load_s, 1), timings)


def console_section(result: ConsoleResult) -> Section:
    section = Section("console", "8. Web console: page render time at scale (PostgreSQL, in-process ASGI)")
    for timing in result.timings:
        targeted = "not a target" not in timing.name
        section.add(
            timing.name,
            f"p50 {timing.p50_ms:.1f} ms, p95 {timing.p95_ms:.1f} ms, max {timing.max_ms:.1f} ms",
            f"{timing.samples} requests" + (f"; {P95_LIMIT_MS:.0f} ms" if targeted else ""),
            timing.p95_ms / P95_LIMIT_MS if targeted else None,
            target=f"p95 < {P95_LIMIT_MS:.0f} ms" if targeted else "",
            met=timing.p95_ms < P95_LIMIT_MS if targeted else None,
        )
    section.settings = {
        "runs": f"{result.runs:,}",
        "chunk rows": f"{result.chunks:,}",
        "bulk load": f"{result.load_s:.0f} s (as benchmark 5)",
    }
    section.notes.append(
        "Each request goes through the whole web app in this process: middleware, session (in memory, "
        "REGSYNC_SHARED_STATE=local), the key's scope, the API's own query functions and Jinja2 rendering; no "
        "socket, no browser. A run page of the bulk-loaded ledger has no failure rows."
    )
    return section
