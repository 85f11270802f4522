"""Erasure: after `regsync forget`, no column of any table holds the org number or the record Id (the test reads
every table the database has, by reflection), `audit verify` passes and the erasure is an audit event."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import MetaData, create_engine, select
from typer.testing import CliRunner

from tests.conftest import RegsyncEnv
from tests.integration.retention_world import Trace, apply_acme, days_ago, seed
from worker.cli.main import app
from worker.crm.ids import canonical_id
from worker.ledger.db import session_scope
from worker.ledger.models import Run
from worker.retention.erase import ERASE_ACTION

GONE = Trace(canonical_id("001000000000001"), "923609016")
KEPT = Trace(canonical_id("001000000000002"), "974760673")


@pytest.fixture
def ledger(env: RegsyncEnv) -> Iterator[str]:
    connection_id = apply_acme()
    for trace in (GONE, KEPT):
        run_id = seed(connection_id, days_ago(2), trace)
        with session_scope() as session:  # a backfill by ids keeps them in its options
            session.get_one(Run, run_id).options = {
                "ids": [trace.record_id],
                "note": f"NO:{trace.org_number}",
            }
    yield env.database_url


def _cells(url: str) -> list[tuple[str, str, str]]:
    """(table, column, text) of every non-null cell of every table of the database."""
    engine = create_engine(url)
    metadata = MetaData()
    metadata.reflect(engine)
    cells = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)).mappings():
                cells += [(table.name, name, str(value)) for name, value in row.items() if value is not None]
    engine.dispose()
    return cells


def _holding(url: str, needle: str) -> set[tuple[str, str]]:
    return {(table, column) for table, column, text in _cells(url) if needle in text}


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, [*args])
    assert result.exit_code == 0, result.output
    return result.output


def test_forget_an_org_number_leaves_no_cell_holding_it_or_its_record(ledger: str) -> None:
    assert len(_holding(ledger, GONE.org_number)) >= 5, "the seed should spread the number over many tables"

    _cli("forget", "--org-number", "NO/923 609 016", "--actor", "dpo")

    assert _holding(ledger, GONE.org_number) == set()
    assert _holding(ledger, GONE.record_id) == set()
    assert ("key_index", "org_number") in _holding(ledger, KEPT.org_number), (
        "another company's traces went too"
    )
    assert ("record_writes", "record_id") in _holding(ledger, KEPT.record_id)
    verify = _cli("audit", "verify")
    assert "audit log intact" in verify and "erasure" in verify


def test_forget_a_record_leaves_no_cell_holding_its_id(ledger: str) -> None:
    _cli("forget", "--record", GONE.record_id[:15], "--actor", "dpo")

    assert _holding(ledger, GONE.record_id) == set()
    assert _holding(ledger, KEPT.record_id)
    events = _cli("audit", "list", "--json")
    assert ERASE_ACTION in events and GONE.record_id not in events


def test_forget_needs_exactly_one_subject(ledger: str) -> None:
    result = CliRunner().invoke(app, ["forget", "--actor", "dpo"])
    assert result.exit_code == 2
