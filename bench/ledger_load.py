"""Bulk-load a ledger with many runs and chunk rows (INSERT … SELECT generate_series), for the ledger benchmark.

Column lists come from the models, so columns other features add (with a default) are filled in too. Chunk
rows carry a one-Id ``record_ids`` list instead of 200 Ids: no query of ``runs list/show`` reads that column,
and 5 million × 4 KB of Ids would only measure the disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from sqlalchemy import Column, Connection, Table, text

from worker.ledger.models import Chunk, Run

CONNECTIONS = 20
#: Minutes between two runs' queued_at: 100,000 runs span about a year.
RUN_SPACING_MIN = 5

RUN_VALUES: dict[str, str] = {
    "connection_id": "1 + g % :connections",
    "kind": "CASE WHEN g % 10 = 0 THEN 'manual' ELSE 'scheduled' END",
    "status": "CASE WHEN g > :runs - 3 THEN 'running' WHEN g % 50 = 0 THEN 'failed' "
    "WHEN g % 7 = 0 THEN 'partially_failed' ELSE 'succeeded' END",
    "triggered_by": "CASE WHEN g % 10 = 0 THEN 'cli:ops' ELSE 'schedule' END",
    "scheduled_for": "CASE WHEN g % 10 = 0 THEN NULL ELSE now() - (:runs - g) * interval '5 minutes' END",
    "options": "'{}'::json",
    "queued_at": "now() - (:runs - g) * interval '5 minutes'",
    "started_at": "now() - (:runs - g) * interval '5 minutes' + interval '1 second'",
    "finished_at": "CASE WHEN g > :runs - 3 THEN NULL "
    "ELSE now() - (:runs - g) * interval '5 minutes' + interval '4 minutes' END",
    "chunks_total": ":chunks_per_run",
    "chunks_done": ":chunks_per_run",
    "planned": ":chunks_per_run * 200",
    "fetched": ":chunks_per_run * 200",
    "unchanged": ":chunks_per_run * 190",
    "updated": ":chunks_per_run * 10",
    "registry_calls": ":chunks_per_run * 200",
    "crm_calls": ":chunks_per_run * 2 + 1",
}

CHUNK_VALUES: dict[str, str] = {
    "run_id": "r.id",
    "seq": "s",
    "status": "'done'",
    "record_ids": "'[\"0015g00000000001AAA\"]'::json",
    "attempt": "1",
    "enqueued_at": "r.queued_at",
    "started_at": "r.started_at",
    "finished_at": "r.started_at + interval '3 minutes'",
    "fetched": "200",
    "unchanged": "190",
    "updated": "10",
    "registry_calls": "200",
    "crm_calls": "2",
}


def _default_sql(column: Column[object]) -> str | None:
    """SQL for a NOT NULL column nobody gave a value: its scalar Python default, or None if it needs none."""
    if column.primary_key or column.nullable or column.server_default is not None:
        return None
    default = column.default
    if default is None or not getattr(default, "is_scalar", False):
        raise ValueError(f"{column.table.name}.{column.name} needs a value in the bulk load")
    value = default.arg  # type: ignore[attr-defined]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def insert_select(table: Table, values: Mapping[str, str], source: str) -> str:
    """``INSERT INTO table (cols) SELECT exprs FROM source`` covering every column that needs a value."""
    columns, expressions = [], []
    for column in table.columns:
        expression = values.get(column.name) or _default_sql(column)
        if expression is not None:
            columns.append(column.name)
            expressions.append(expression)
    return f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {', '.join(expressions)} FROM {source}"


def load(connection: Connection, runs: int, chunks: int, progress: Callable[[str], None]) -> float:
    """Insert CONNECTIONS connections, ``runs`` runs and ``chunks`` chunk rows; returns seconds taken."""
    started = time.monotonic()
    per_run = max(1, chunks // runs)
    connection.execute(text("SET synchronous_commit = off"))
    connection.execute(
        text(
            "INSERT INTO connections (name, spec, spec_hash, enabled, created_at, updated_at) "
            "SELECT 'bench-' || lpad(g::text, 2, '0'), '{}'::json, md5(g::text), true, now(), now() "
            "FROM generate_series(1, :n) g"
        ),
        {"n": CONNECTIONS},
    )
    statement = insert_select(Run.__table__, RUN_VALUES, "generate_series(1, :runs) g")  # type: ignore[arg-type]
    connection.execute(text(statement), {"runs": runs, "connections": CONNECTIONS, "chunks_per_run": per_run})
    connection.commit()
    progress(f"{runs:,} runs loaded")
    step = max(1, 500_000 // per_run)  # runs per statement: about half a million chunk rows at a time
    for first in range(1, runs + 1, step):
        source = "runs r CROSS JOIN generate_series(0, :last_seq) s WHERE r.id BETWEEN :first AND :last"
        statement = insert_select(Chunk.__table__, CHUNK_VALUES, source)  # type: ignore[arg-type]
        connection.execute(
            text(statement), {"last_seq": per_run - 1, "first": first, "last": first + step - 1}
        )
        connection.commit()
        progress(f"{min(runs, first + step - 1) * per_run:,} chunk rows loaded")
    return time.monotonic() - started
