"""Every exception a planner or chunk can meet, classified once: a RegsyncError that says transient or not.

regsync's own errors are already classified. Database errors become LedgerUnavailable (transient: the connection
dropped, a serialization failure, a deadlock, the server shutting down) or LedgerError (permanent). Network
errors that escaped a client are transient; anything else is an InternalError (a bug), which is not retried.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from worker.errors import ConnectionLost, InternalError, LedgerUnavailable, RegsyncError
from worker.ledger.db import ledger_error, missing_table

#: SQLSTATE classes and codes worth a retry: connection exceptions, serialization failure, deadlock, lock not
#: available, insufficient resources (too many connections), operator intervention (server shutting down).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def classify(exc: BaseException) -> RegsyncError:
    """``exc`` as a RegsyncError (itself if it is one); raise the result ``from exc`` when it is new."""
    if isinstance(exc, RegsyncError):
        return exc
    if isinstance(exc, DBAPIError):
        return _database(exc)
    if isinstance(exc, SQLAlchemyError):
        return LedgerUnavailable(f"the ledger database failed ({type(exc).__name__})")
    if isinstance(exc, ConnectionError | TimeoutError):
        return ConnectionLost(f"a connection failed ({type(exc).__name__}); it will be retried")
    return InternalError(
        f"unexpected {type(exc).__name__}: a bug in regsync; the worker log has the traceback"
    )


def is_transient(exc: BaseException) -> bool:
    return classify(exc).transient


def _database(exc: DBAPIError) -> RegsyncError:
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    transient = (
        sqlstate in _TRANSIENT_SQLSTATES
        or sqlstate.startswith(_TRANSIENT_SQLSTATE_CLASSES)
        or exc.connection_invalidated
        or (isinstance(exc, OperationalError) and not sqlstate and not missing_table(exc))
    )
    if transient:
        detail = f"SQLSTATE {sqlstate}" if sqlstate else type(exc.orig).__name__
        return LedgerUnavailable(f"the ledger database asked us to retry ({detail}); it will be retried")
    return ledger_error(exc)


def log_if_unexpected(log: logging.Logger, error: RegsyncError, exc: BaseException, **ids: int) -> None:
    """A bug gets its traceback in the log. Other errors are logged where they are handled, by their message
    only: a database error's text holds SQL parameters (record Ids), a client's may hold a response body."""
    if isinstance(error, InternalError):
        log.error("unexpected error: %s", error.message, exc_info=exc, extra=ids)
