"""Error answers of the console: a page (or the sign-in redirect), never a stack trace or an input echo.

Statuses are the API's own: 404 for anything outside the key's scope, 403 for a role too low or a bad CSRF
token, 409 for a state conflict; a probe of another tenant's id is counted as the API counts it.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker.api import access_watch
from worker.api.context import correlation_id
from worker.api.problems import ApiError, ForeignId, _status_of, not_found
from worker.console.auth import PREFIX, SignInNeeded
from worker.console.render import page
from worker.errors import RegsyncError, SharedStateUnavailable

log = logging.getLogger(__name__)

_HEADINGS = {
    400: "That did not work",
    403: "Not allowed",
    404: "Not found",
    409: "Not possible now",
    413: "Too large",
    422: "Not a valid request",
    429: "Too many attempts",
    502: "Salesforce answered with an error",
    503: "Not available",
}


def error_page(request: Request, status: int, message: str) -> Response:
    heading = _HEADINGS.get(status, "Something went wrong")
    return page(
        request, "error.html", status, heading=heading, message=message, correlation_id=correlation_id()
    )


async def _sign_in(_request: Request, _exc: Exception) -> Response:
    return RedirectResponse(f"{PREFIX}/login", status_code=303)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_page(request, exc.status, exc.message)


async def _foreign(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ForeignId)
    await run_in_threadpool(access_watch.foreign_id, request)
    return error_page(request, 404, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = {404: "There is no such page in the console.", 405: "That page does not take this request."}
    return error_page(request, exc.status_code, message.get(exc.status_code, "The request was refused."))


async def _validation(request: Request, _exc: Exception) -> Response:
    return error_page(request, 422, "The address or the form has a value that is not valid here.")


async def _regsync_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegsyncError)
    status = 503 if isinstance(exc, SharedStateUnavailable) else _status_of(exc)
    if status == 404:
        return error_page(request, 404, not_found().message)
    if status >= 500:
        log.error(
            "%s in console request: %s", exc.code, exc.message, extra={"correlation_id": correlation_id()}
        )
        return error_page(request, status, "Try again shortly; quote the correlation id if it persists.")
    return error_page(request, status, exc.message)


def install(app: FastAPI) -> None:
    """Every console error becomes a page (the more specific handler wins: sign-in, foreign id)."""
    app.add_exception_handler(SignInNeeded, _sign_in)
    app.add_exception_handler(ForeignId, _foreign)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(RegsyncError, _regsync_error)
