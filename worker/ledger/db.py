"""Engines and sessions for the ledger; SQLite gets WAL and a busy timeout so several processes can share it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import get_settings
from worker.errors import LedgerError
from worker.infra import process_state


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite is tuned for several worker processes writing one file."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """One engine per URL per process."""
    if url not in _ENGINES:
        _ENGINES[url] = make_engine(url)
    return _ENGINES[url]


def get_engine() -> Engine:
    """The process-wide engine for REGSYNC_DATABASE_URL."""
    return engine_for(get_settings().database_url)


def reset_engines() -> None:
    """Dispose cached engines (after a fork, or when tests change the URL)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


process_state.register(__name__, "_ENGINES", reset_engines)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    factory = sessionmaker(bind=engine or get_engine(), expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


#: PostgreSQL's SQLSTATEs for an undefined table and an undefined column. By code, not text: "database … does
#: not exist" and "role … does not exist" are connection errors that migrating would not fix.
_UNDEFINED = frozenset({"42P01", "42703"})
_SQLITE_MISSING = ("no such table", "no such column")


def missing_table(exc: DBAPIError) -> bool:
    """True when the database says a table or column does not exist: the ledger is not migrated (enough)."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _UNDEFINED
    message = str(exc.orig).lower()
    return any(marker in message for marker in _SQLITE_MISSING)


def ledger_error(exc: DBAPIError) -> LedgerError:
    """What a database error means for the person running regsync, and what to do about it.

    The driver's first line is kept (it names the table, host or file) and the statement is dropped: it can
    hold record Ids. Callers redact the message before printing, as for every error.
    """
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    if missing_table(exc):
        return LedgerError(
            f"the ledger's tables are missing or older than this regsync ({detail}): run "
            "`alembic upgrade head` with REGSYNC_DATABASE_URL pointing at this ledger"
        )
    if isinstance(exc, OperationalError):
        return LedgerError(
            f"cannot use the ledger database ({detail}): check REGSYNC_DATABASE_URL and that the database "
            "is running and reachable"
        )
    return LedgerError(f"the ledger database refused a query ({detail})")
