"""Migration 0007 adds the registry outcome counters to runs and chunks that already exist, as 0, and removes them."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from worker.ledger.migrate import current, downgrade, upgrade

COUNTERS = ("out_of_scope", "registry_not_found", "registry_deleted", "registry_inactive", "status_unknown")


def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return {column["name"] for column in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def _seed_run_and_chunk(url: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO connections (id, name, spec, spec_hash, enabled, created_at, updated_at) "
                    "VALUES (1, 'acme', '{}', 'h', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO runs (id, connection_id, kind, status, triggered_by, options, queued_at, "
                    "cancel_requested, planned_complete, chunks_total, chunks_done, planned, invalid, fetched, "
                    "unchanged, updated, failed, registry_calls, crm_calls) VALUES (1, 1, 'manual', 'succeeded', "
                    "'t', '{}', CURRENT_TIMESTAMP, false, true, 1, 1, 3, 0, 3, 1, 2, 0, 3, 2)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO chunks (id, run_id, seq, status, record_ids, attempt, enqueued_at, fetched, "
                    "unchanged, updated, failed, registry_calls, crm_calls) VALUES (1, 1, 0, 'done', '[]', 1, "
                    "CURRENT_TIMESTAMP, 3, 1, 2, 0, 3, 2)"
                )
            )
    finally:
        engine.dispose()


def _counters(url: str, table: str) -> tuple[int, ...]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            row = connection.execute(text(f"SELECT {', '.join(COUNTERS)} FROM {table}")).one()
    finally:
        engine.dispose()
    return tuple(row)


def test_0007_adds_the_counters_as_zero_to_existing_rows_and_downgrade_drops_them(ledger_url: str) -> None:
    upgrade(ledger_url, "0006")
    _seed_run_and_chunk(ledger_url)

    upgrade(ledger_url, "0007")

    assert current(ledger_url) == "0007"
    assert _counters(ledger_url, "runs") == _counters(ledger_url, "chunks") == (0, 0, 0, 0, 0)

    downgrade(ledger_url, "0006")

    for table in ("runs", "chunks"):
        assert not set(COUNTERS) & _columns(ledger_url, table)
