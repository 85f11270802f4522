"""Engines and sessions for the ledger; SQLite gets WAL and a busy timeout so several processes can share it."""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Engine, Result, create_engine, event, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import get_settings
from worker.errors import LedgerError, LedgerNotMigrated, LedgerUnavailable
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
    """A session that commits on success and rolls back on error.

    A ledger that is down, unreachable or not migrated is translated once, here (see :func:`ledger_error`):
    LedgerUnavailable when worth a retry (the server went away, a serialization failure), so Celery retries a
    chunk through a ledger blip; LedgerNotMigrated or LedgerError otherwise. Other database errors stay raw: an
    IntegrityError is how callers detect a conflict (a unique name taken, a row inserted by another process
    first), and anything else is a bug that keeps its traceback.
    """
    factory = sessionmaker(bind=engine or get_engine(), expire_on_commit=False)
    try:
        with factory() as session, session.begin():
            yield session
    except DBAPIError as exc:
        if isinstance(exc, OperationalError | InterfaceError) or missing_table(exc):
            raise ledger_error(exc) from exc
        raise


T = TypeVar("T")

log = logging.getLogger(__name__)


def ride_out(
    work: Callable[[], T],
    *,
    within_s: float,
    on_wait: Callable[[LedgerUnavailable], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``work()``, tried again while the ledger is unavailable (every 0.5 s, doubling up to 4 s) for up to
    ``within_s`` seconds; then its LedgerUnavailable goes through.

    For what must not be lost to a ledger blip: a chunk's result, the calls an attempt spent, the Salesforce
    usage, a chunk handed back for its retry. ``work`` must be one transaction (a session_scope) that can run
    again: a translated error means it rolled back. ``on_wait`` hears of the first failure only.
    """
    deadline, pause, told = clock() + within_s, 0.5, False
    while True:
        try:
            return work()
        except LedgerUnavailable as exc:
            if clock() + pause > deadline:
                raise
            if not told:
                told = True
                log.warning(
                    "the ledger does not answer; trying again for up to %.0f s: %s", within_s, exc.message
                )
                if on_wait is not None:
                    on_wait(exc)
            sleep(pause)
            pause = min(pause * 2, 4.0)


def updated_one(result: Result[Any]) -> bool:
    """True when the UPDATE or DELETE that gave ``result`` matched exactly one row: the compare-and-set idiom
    (STYLE §4), where the WHERE clause carries the expected state and one row means "this process won"."""
    return updated_count(result) == 1


def updated_count(result: Result[Any]) -> int:
    """How many rows the UPDATE or DELETE that gave ``result`` matched."""
    return int(cast(CursorResult[Any], result).rowcount or 0)


def hold_lock(session: Session, name: str, *, sqlite_claim: str) -> None:
    """Hold the application-wide lock ``name`` until this transaction ends, so its writers go one at a time.

    PostgreSQL: a transaction-scoped advisory lock on a stable 31-bit key derived from ``name``. SQLite has one
    writer at a time, but only from a transaction's first write on: ``sqlite_claim`` is a write that matches
    no row, run now to take the write lock before anything is read.
    """
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(name.encode()) & 0x7FFFFFFF
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        session.execute(text(sqlite_claim))


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


#: SQLSTATE classes and codes worth a retry: connection exceptions, serialization failure, deadlock, lock not
#: available, insufficient resources (too many connections), operator intervention (server shutting down).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def is_transient(exc: DBAPIError) -> bool:
    """True when a retry may succeed: the connection dropped or was refused, the server is shutting down, a
    serialization failure or deadlock. OperationalError/InterfaceError without a SQLSTATE (the driver lost the
    connection, or SQLite's "database is locked") count too, unless they say a table is missing."""
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    if sqlstate:
        return sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith(_TRANSIENT_SQLSTATE_CLASSES)
    return bool(exc.connection_invalidated) or (
        isinstance(exc, OperationalError | InterfaceError) and not missing_table(exc)
    )


def ledger_error(exc: DBAPIError) -> LedgerError:
    """What a database error means for the person running regsync, and what to do about it: the one translation
    (session_scope applies it; so do the CLI and the classifier to a raw error that left a session).

    The driver's first line is kept (it names the table, host or file) and the statement is dropped: it can
    hold record Ids. Callers redact the message before printing, as for every error.
    """
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    if missing_table(exc):
        return LedgerNotMigrated(
            f"the ledger's tables are missing or older than this regsync ({detail}): run "
            "`alembic upgrade head` with REGSYNC_DATABASE_URL pointing at this ledger"
        )
    if is_transient(exc):
        return LedgerUnavailable(
            f"cannot use the ledger database ({detail}): check REGSYNC_DATABASE_URL and that the database "
            "is running and reachable"
        )
    if isinstance(exc, OperationalError):
        return LedgerError(
            f"cannot use the ledger database ({detail}): check REGSYNC_DATABASE_URL and that the database "
            "is running and reachable"
        )
    return LedgerError(f"the ledger database refused a query ({detail})")
