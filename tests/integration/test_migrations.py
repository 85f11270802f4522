"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from worker.ledger.migrate import current, downgrade, heads, upgrade
from worker.schema import Base

REPO = Path(__file__).resolve().parents[2]


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migration_scripts_have_exactly_one_head() -> None:
    assert len(heads()) == 1


def test_upgrade_from_empty_database_to_head_creates_every_table(ledger_url: str) -> None:
    assert current(ledger_url) is None

    upgrade(ledger_url)

    assert current(ledger_url) == heads()[0]
    assert set(Base.metadata.tables) <= _tables(ledger_url)


def test_migrated_schema_matches_the_models(migrated_url: str) -> None:
    engine = create_engine(migrated_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()

    assert differences == []


def test_downgrade_to_base_removes_every_table(migrated_url: str) -> None:
    downgrade(migrated_url, "base")

    assert current(migrated_url) is None
    assert _tables(migrated_url) <= {"alembic_version"}


def test_alembic_command_takes_the_url_from_settings_from_any_directory(
    sqlite_url: str, tmp_path: Path
) -> None:
    environ = {**os.environ, "REGSYNC_DATABASE_URL": sqlite_url}
    alembic = [sys.executable, "-m", "alembic", "-c", str(REPO / "alembic.ini")]

    done = subprocess.run(
        [*alembic, "upgrade", "head"], cwd=tmp_path, env=environ, capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stderr
    assert current(sqlite_url) == heads()[0]


def test_alembic_x_url_overrides_the_settings(sqlite_url: str, tmp_path: Path) -> None:
    environ = {**os.environ, "REGSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'other.sqlite3'}"}
    command = [sys.executable, "-m", "alembic", "-x", f"url={sqlite_url}", "upgrade", "head"]

    done = subprocess.run(command, cwd=REPO, env=environ, capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stderr
    assert current(sqlite_url) == heads()[0]
    assert not (tmp_path / "other.sqlite3").exists()
