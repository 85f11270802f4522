"""Ledger latency at scale: ``runs list`` and ``runs show`` over 100,000 runs and 5,000,000 chunk rows.

The throwaway PostgreSQL database is migrated (so it has exactly the indexes the migrations create), bulk
loaded, vacuumed and analysed; then each query path is timed many times: the view functions the CLI and the
API call (each in its own session, as a command does), and the CLI commands themselves in-process (Typer's
runner: parsing, query and rendering, without the interpreter's start-up, which is timed once separately).
"""

from __future__ import annotations

import contextlib
import io
import math
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy import text

from bench.ledger_load import CONNECTIONS, load
from bench.machine import REPO_ROOT
from bench.services import Services, environment


@dataclass(frozen=True, slots=True)
class Latency:
    name: str
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class LedgerResult:
    runs: int
    chunks: int
    load_s: float
    latencies: list[Latency]
    plans: dict[str, str]
    cold_cli_ms: float | None  # None: not measured (quick runs)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def time_calls(name: str, call: Callable[[], object], samples: int, warmup: int = 5) -> Latency:
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return Latency(
        name,
        samples,
        round(statistics.median(timings), 2),
        round(percentile(timings, 0.99), 2),
        round(max(timings), 2),
    )


def _view_calls(runs: int, rng: random.Random) -> dict[str, Callable[[], object]]:
    from worker.ledger.db import session_scope
    from worker.ledger.views import list_runs, show_run

    def list_all() -> object:
        with session_scope() as session:
            return list_runs(session, None, 20)

    def list_one() -> object:
        with session_scope() as session:
            return list_runs(session, f"bench-{rng.randint(1, CONNECTIONS):02d}", 20)

    def show_one() -> object:
        with session_scope() as session:
            return show_run(session, rng.randint(1, runs))

    return {
        "views.list_runs (all connections)": list_all,
        "views.list_runs (one connection)": list_one,
        "views.show_run (random run)": show_one,
    }


def _cli_calls(runs: int, rng: random.Random) -> dict[str, Callable[[], object]]:
    """The CLI commands, parsed, run and rendered in-process.

    The Click command is built from the Typer app once, as one CLI process does at start-up (rebuilding it
    per call, as Typer's test runner does, costs ~60 ms of signature inspection that is not the query path).
    """
    import typer

    from worker.cli.main import app

    command = typer.main.get_command(app)

    def invoke(*args: str) -> object:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                code = command.main(list(args), prog_name="regsync", standalone_mode=False)
            except SystemExit as exc:
                code = exc.code
        if code not in (None, 0, 1):  # `runs show` exits 1 for a failed run: still a good answer
            raise RuntimeError(f"regsync {' '.join(args)} exited {code}: {out.getvalue()[-500:]}")
        return out.getvalue()

    return {
        "CLI `runs list` (query + table)": lambda: invoke("runs", "list"),
        "CLI `runs list -c NAME` (query + table)": lambda: invoke(
            "runs", "list", "-c", f"bench-{rng.randint(1, CONNECTIONS):02d}"
        ),
        "CLI `runs show ID` (query + summary)": lambda: invoke("runs", "show", str(rng.randint(1, runs))),
        "CLI `runs show ID --json`": lambda: invoke("runs", "show", str(rng.randint(1, runs)), "--json"),
    }


def _explain(runs: int) -> dict[str, str]:
    """The PostgreSQL plans of the list and show queries, top line each, to show which index serves them."""
    from worker.ledger.db import session_scope

    queries = {
        "runs list": "SELECT runs.id FROM runs JOIN connections ON connections.id = runs.connection_id "
        "ORDER BY runs.queued_at DESC, runs.id DESC LIMIT 20",
        "runs list -c": "SELECT runs.id FROM runs JOIN connections ON connections.id = runs.connection_id "
        "WHERE runs.connection_id = 7 ORDER BY runs.queued_at DESC, runs.id DESC LIMIT 20",  # as list_runs asks
        "runs show": f"SELECT * FROM runs WHERE id = {runs // 2}",
    }
    plans: dict[str, str] = {}
    with session_scope() as session:
        for name, query in queries.items():
            rows = session.execute(text(f"EXPLAIN {query}")).scalars().all()
            plans[name] = " / ".join(row.strip() for row in rows if "Scan" in row or "Sort" in row) or rows[0]
    return plans


def _cold_cli_ms(repeat: int) -> float | None:
    """`regsync runs list` as a fresh process (interpreter and imports included), median of ``repeat``."""
    if repeat < 1:
        return None
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "worker.cli.main", "runs", "list"],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
            timeout=120,
        )
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 1)


def _prepare(
    services: Services, db_url: str, runs: int, chunks: int, progress: Callable[[str], None]
) -> float:
    from worker.ledger.db import get_engine
    from worker.ledger.migrate import upgrade

    upgrade(db_url)
    with get_engine().connect() as connection:
        seconds = load(connection, runs, chunks, progress)
    database = db_url.rsplit("/", 1)[1]
    with psycopg.connect(services.dsn(database), autocommit=True) as admin:
        admin.execute("VACUUM ANALYZE")
    return seconds


def run_ledger(
    runs: int,
    chunks: int,
    samples: int,
    services: Services,
    workdir: Path,
    *,
    progress: Callable[[str], None] = print,
    cold_repeat: int = 3,
) -> LedgerResult:
    """Load a throwaway ledger and time the runs list / show paths ``samples`` times each."""
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(11)
    with (
        services.database("ledger") as db_url,
        environment({"REGSYNC_DATABASE_URL": db_url, "REGSYNC_LOG_LEVEL": "WARNING"}),
    ):
        load_s = _prepare(services, db_url, runs, chunks, progress)
        calls = {**_view_calls(runs, rng), **_cli_calls(runs, rng)}
        latencies = [time_calls(name, call, samples) for name, call in calls.items()]
        return LedgerResult(
            runs, chunks, round(load_s, 1), latencies, _explain(runs), _cold_cli_ms(cold_repeat)
        )
