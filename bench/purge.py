"""Retention purge at scale (issue 15): 1,000,000 failure rows purged in bounded batches while a run writes.

A throwaway PostgreSQL ledger gets one connection, an old finished run holding the failure rows (loaded with one
``INSERT … SELECT generate_series``) and a running run. A writer thread then does what a run's chunks do, in a
loop: one transaction that inserts a chunk's failures and updates the run row's counters and heartbeat. It is
timed alone first (its baseline), then while the real purge code (``purge_connection``, failures only, default
batch size) deletes the old rows. Each writer transaction's wall time is its wait: the purge must never hold it
for a second.
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.ledger import percentile
from bench.services import Services, environment

#: Failure rows per writer transaction (a chunk with a few refused records) and the pause between two.
WRITER_ROWS = 20
WRITER_PAUSE_S = 0.01
BASELINE_S = 5.0
AGE = dt.timedelta(days=200)
#: Chunk numbers of every writer: record ids stay unique per run across the baseline and the timed writer.
_CHUNKS = itertools.count()


@dataclass(frozen=True, slots=True)
class WriterStats:
    transactions: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class PurgeResult:
    rows: int
    purged: int
    left: int
    load_s: float
    purge_s: float
    batch_rows: int
    baseline: WriterStats
    during: WriterStats

    @property
    def rows_per_s(self) -> float:
        return self.purged / self.purge_s if self.purge_s else 0.0


class Writer:
    """A thread writing like a run's chunks until stopped; records each transaction's wall time (ms)."""

    def __init__(self, dsn: str, run_id: int) -> None:
        self.dsn, self.run_id = dsn, run_id
        self.timings_ms: list[float] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-writer", daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.error is not None:
            raise RuntimeError("the concurrent writer failed; its waits would mean nothing") from self.error

    def _loop(self) -> None:
        try:
            with psycopg.connect(self.dsn) as connection:
                while not self._stop.is_set():
                    started = time.perf_counter()
                    with connection.transaction():
                        self._chunk(connection, next(_CHUNKS))
                    self.timings_ms.append((time.perf_counter() - started) * 1000)
                    time.sleep(WRITER_PAUSE_S)
        except BaseException as exc:
            self.error = exc

    def _chunk(self, connection: psycopg.Connection, seq: int) -> None:
        connection.execute(
            "INSERT INTO record_failures (run_id, record_id, error_code, message, attempt, created_at) "
            "SELECT %s, '001W' || lpad((%s + n)::text, 14, '0'), 'FIELD_CUSTOM_VALIDATION_EXCEPTION', "
            "'refused: \"***\"', 1, now() FROM generate_series(1, %s) AS n",
            (self.run_id, seq * WRITER_ROWS, WRITER_ROWS),
        )
        connection.execute(
            "UPDATE runs SET failed = failed + %s, updated = updated + 1, heartbeat_at = now() WHERE id = %s",
            (WRITER_ROWS, self.run_id),
        )

    def stats(self) -> WriterStats:
        values = self.timings_ms or [0.0]
        return WriterStats(
            len(self.timings_ms),
            round(statistics.median(values), 2),
            round(percentile(values, 0.99), 2),
            round(max(values), 2),
        )


def _runs() -> tuple[int, int]:
    """An old finished run and a running one of the bench connection (ORM: the model's defaults apply)."""
    from worker.ledger.db import session_scope
    from worker.ledger.models import Connection, Run, RunStatus

    now = dt.datetime.now(dt.UTC)
    with session_scope() as session:
        connection_id = session.query(Connection.id).filter(Connection.name == "bench").scalar()
        common = {"connection_id": connection_id, "kind": "manual", "triggered_by": "bench", "options": {}}
        old = now - AGE
        runs = [
            Run(**common, status=RunStatus.SUCCEEDED.value, queued_at=old, started_at=old, finished_at=old),
            Run(**common, status=RunStatus.RUNNING.value, queued_at=now, started_at=now, heartbeat_at=now),
        ]
        session.add_all(runs)
        session.flush()
        return runs[0].id, runs[1].id


def _seed(dsn: str, rows: int) -> tuple[int, int]:
    """The old run with ``rows`` failures and a running run; returns (old run id, running run id)."""
    old_run, live_run = _runs()
    with psycopg.connect(dsn) as connection:
        connection.execute("SET synchronous_commit = off")
        connection.execute(
            "INSERT INTO record_failures (run_id, record_id, org_number, error_code, message, attempt, created_at) "
            "SELECT %s, '001B' || lpad(n::text, 14, '0'), lpad((n %% 1000000000)::text, 9, '9'), "
            "'FIELD_CUSTOM_VALIDATION_EXCEPTION', 'refused: \"***\" for ***', 1, %s "
            "FROM generate_series(1, %s) AS n",
            (old_run, dt.datetime.now(dt.UTC) - AGE, rows),
        )
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE record_failures")
        connection.execute("VACUUM ANALYZE runs")
    return old_run, live_run


def _apply_connection() -> None:
    from worker.connections.apply import apply_connection
    from worker.connections.spec import parse_spec
    from worker.ledger.db import session_scope

    data: dict[str, object] = {
        "name": "bench",
        "salesforce": {
            "token_url": "https://login.salesforce.com/services/oauth2/token",
            "client_id": "bench",
            "org_number_field": "Org_Number__c",
            "country": "NO",
        },
        "registry": {"provider": "brreg", "base_url": "https://data.brreg.no/enhetsregisteret/api"},
        "mapping": {"name": {"field": "Name", "policy": "overwrite"}},
    }
    with session_scope() as session:
        apply_connection(session, parse_spec(data), "bench")


def _count(dsn: str, run_id: int) -> int:
    with psycopg.connect(dsn) as connection:
        row = connection.execute(
            "SELECT count(*) FROM record_failures WHERE run_id = %s", (run_id,)
        ).fetchone()
        return int(row[0]) if row else 0


def _purge() -> tuple[int, float, int]:
    from worker.retention.policy import PurgeKind
    from worker.retention.purge import PurgeRequest, purge_connection

    request = PurgeRequest(kinds=frozenset({PurgeKind.FAILURES}))
    started = time.perf_counter()
    report = purge_connection("bench", request, "bench", dt.datetime.now(dt.UTC))
    return report.counts.get(PurgeKind.FAILURES.value, 0), time.perf_counter() - started, request.batch_rows


def run_purge(rows: int, services: Services, workdir: Path) -> PurgeResult:
    """Load ``rows`` old failures, time the writer alone, then purge them while it writes."""
    from cryptography.fernet import Fernet

    from worker.ledger.migrate import upgrade

    workdir.mkdir(parents=True, exist_ok=True)
    with services.database("purge") as url:
        variables = {
            "REGSYNC_DATABASE_URL": url,
            "REGSYNC_SECRET_KEY": Fernet.generate_key().decode("ascii"),
            "REGSYNC_LOG_LEVEL": "WARNING",
        }
        with environment(variables):
            upgrade(url)
            _apply_connection()
            dsn = services.dsn(url.rsplit("/", 1)[1])
            started = time.perf_counter()
            old_run, live_run = _seed(dsn, rows)
            load_s = time.perf_counter() - started
            with Writer(dsn, live_run) as alone:
                time.sleep(BASELINE_S)
            with Writer(dsn, live_run) as during:
                purged, purge_s, batch = _purge()
            left = _count(dsn, old_run)
            return PurgeResult(rows, purged, left, load_s, purge_s, batch, alone.stats(), during.stats())
