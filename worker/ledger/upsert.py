"""INSERT … ON CONFLICT for PostgreSQL and SQLite alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import FromClause
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert(
    session: Session,
    table: FromClause,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    """Insert ``rows``; where ``keys`` collide, overwrite the ``update`` columns with the new values."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    # executemany with one cached statement: a multi-row .values(rows) is compiled afresh on every call, which
    # cost a third of a chunk's CPU; SQLAlchemy still sends the rows as batched multi-row VALUES.
    statement = module.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: statement.excluded[name] for name in update}
    )
    session.execute(statement, list(rows))
