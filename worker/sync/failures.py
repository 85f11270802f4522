"""Every exception a planner or chunk can meet, classified once: a RegsyncError that says transient or not.

regsync's own errors are already classified, and so are database errors met in a session (session_scope
translates them with ledger_error); one met elsewhere (an IntegrityError a caller let through) gets the same
translation here. Network errors that escaped a client are transient; anything else is an InternalError (a
bug), which is not retried.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from worker.errors import ConnectionLost, InternalError, LedgerUnavailable, RegsyncError
from worker.ledger.db import ledger_error


def classify(exc: BaseException) -> RegsyncError:
    """``exc`` as a RegsyncError (itself if it is one); raise the result ``from exc`` when it is new."""
    if isinstance(exc, RegsyncError):
        return exc
    if isinstance(exc, DBAPIError):
        return ledger_error(exc)
    if isinstance(exc, SQLAlchemyError):
        return LedgerUnavailable(f"the ledger database failed ({type(exc).__name__})")
    if isinstance(exc, ConnectionError | TimeoutError):
        return ConnectionLost(f"a connection failed ({type(exc).__name__}); it will be retried")
    return InternalError(
        f"unexpected {type(exc).__name__}: a bug in regsync; the worker log has the traceback"
    )


def is_transient(exc: BaseException) -> bool:
    return classify(exc).transient


def log_if_unexpected(log: logging.Logger, error: RegsyncError, exc: BaseException, **ids: int) -> None:
    """A bug gets its traceback in the log. Other errors are logged where they are handled, by their message
    only: a database error's text holds SQL parameters (record Ids), a client's may hold a response body."""
    if isinstance(error, InternalError):
        log.error("unexpected error: %s", error.message, exc_info=exc, extra=ids)
