"""Error answers of the HTTP API: RFC 9457 problem details (``application/problem+json``) with our ``code``
and ``correlation_id``; never a stack trace or an input echo. Every error answer is built here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from worker.api.context import correlation_id
from worker.errors import (
    AlertNotFound,
    ChangeNotFound,
    ConnectionNotFound,
    CrmError,
    InvalidFilter,
    LeastPrivilegeError,
    LedgerError,
    MappingError,
    NameMatchNotFound,
    NoticeSettingsRefused,
    RegistryError,
    RegsyncError,
    RunNotFound,
    SecretKeyError,
    SecretMissing,
    StateConflict,
)

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID_REQUEST",
    429: "RATE_LIMITED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    """An answer other than success, raised anywhere below a route."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _STATUS_CODES.get(status, "ERROR")
        self.headers = headers or {}


def not_found(what: str = "resource") -> ApiError:
    """The one 404 for anything missing *or* outside the key's connections (existence is not revealed)."""
    return ApiError(404, f"no such {what} (or your API key is not scoped to it)")


class ForeignId(ApiError):
    """The 404 of an id that exists under another connection: answered exactly like :func:`not_found`, but
    counted, since a run of them is a key probing other tenants (see ``worker.api.access_watch``)."""


def foreign(what: str) -> ForeignId:
    return ForeignId(404, not_found(what).message)


PROBLEM_JSON = "application/problem+json"


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_body(status: int, message: str, code: str | None = None, errors: Any = None) -> dict[str, Any]:
    """The problem details of one error answer (``errors``: the field errors of a 422)."""
    code = code or _STATUS_CODES.get(status, "ERROR")
    cid = correlation_id()
    body: dict[str, Any] = {
        "type": f"urn:regsync:problem:{code.lower().replace('_', '-')}",
        "title": _title(status),
        "status": status,
        "detail": message,
        "instance": f"urn:regsync:request:{cid}",
        "code": code,
        "correlation_id": cid,
    }
    if errors is not None:
        body["errors"] = errors
    return body


def error_response(
    status: int,
    message: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    errors: Any = None,
) -> ProblemResponse:
    return ProblemResponse(error_body(status, message, code, errors), status_code=status, headers=headers)


def internal_error_response() -> ProblemResponse:
    """The generic 500: no type, no message, no trace; the log has them under the correlation id."""
    return error_response(500, "internal error; quote the correlation_id when reporting it")


async def _api_error(_request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.code, exc.headers)


def _allowed_methods(request: Request) -> str:
    """Every method of every route on this path (Starlette's own Allow names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _child = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = {404: "no such path; the API lives under /v1 (see /v1/openapi.json)"}.get(
        exc.status_code, str(exc.detail)
    )
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_response(exc.status_code, message, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # loc and msg only: pydantic's "input" and "ctx" would echo what the caller sent back at them.
    return [
        {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()
    ]


async def _validation_error(_request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "the request is not valid; see errors", errors=_field_errors(exc))


_WHAT = {
    RunNotFound: "run",
    AlertNotFound: "alert",
    ChangeNotFound: "change",
    NameMatchNotFound: "name match",
}


def _status_of(exc: RegsyncError) -> int:
    """The HTTP status of a domain error raised below a route."""
    if isinstance(exc, RunNotFound | ConnectionNotFound | AlertNotFound | ChangeNotFound | NameMatchNotFound):
        return 404
    if isinstance(exc, InvalidFilter | NoticeSettingsRefused | MappingError | LeastPrivilegeError):
        return 422  # the body is well-formed but does not fit this connection (describe, mapping, runs)
    if isinstance(exc, StateConflict | SecretMissing | SecretKeyError):
        return 409  # the resource is not in a state that allows this (yet)
    if isinstance(exc, CrmError | RegistryError):
        return 502  # an upstream service answered with an error
    if isinstance(exc, LedgerError):
        return 503
    return 400


async def _regsync_error(_request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RegsyncError)
    status = _status_of(exc)
    if status == 404:
        return error_response(404, not_found(_WHAT.get(type(exc), "connection")).message)
    if status >= 500:
        log.error("%s in API request: %s", exc.code, exc.message, extra={"correlation_id": correlation_id()})
    if status == 503:
        # One code for every ledger outage (down, unreachable, not migrated), as clients have always seen it.
        return error_response(503, "the ledger is not available; try again shortly", LedgerError.code)
    return error_response(status, exc.message, exc.code)


def documented_as_problems(openapi: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` with every 4xx/5xx answer documented as ``application/problem+json``."""

    def schema() -> dict[str, Any]:
        document = openapi()
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                for status, answer in operation.get("responses", {}).items():
                    content = answer.get("content", {})
                    if status[:1] in ("4", "5") and "application/json" in content:
                        content[PROBLEM_JSON] = content.pop("application/json")
        return document

    return schema


def install(app: FastAPI) -> None:
    """Route every error to the JSON shape above."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RegsyncError, _regsync_error)
