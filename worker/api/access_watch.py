"""Watching access in the web process: failed authentications per client address (rate-limited with the
API's throttle; a burst opens an access anomaly), and 404s on ids of other tenants (a probing key).

Counts live in the throttle, so in Redis across web processes when it answers, else in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from worker.alerts import access
from worker.api.keys import Principal
from worker.api.problems import ApiError, ForeignId, ProblemResponse, error_response
from worker.api.throttle import Throttle, retry_after
from worker.ledger.models import utcnow

log = logging.getLogger(__name__)


def client_address(request: Request) -> str:
    """The caller's address as the server saw it (uvicorn applies trusted proxy headers)."""
    return request.client.host if request.client else "unknown"


def _throttle(request: Request) -> Throttle:
    throttle: Throttle = request.app.state.throttle
    return throttle


def refuse_blocked(request: Request) -> None:
    """429 before the key is even looked at, for an address over the limit of failed authentications
    (otherwise the limit would not slow down guessing). The attempt counts as one more failure."""
    address = client_address(request)
    throttle = _throttle(request)
    if throttle.peek(f"auth-fail:{address}") >= throttle.per_window:
        raise failed_authentication(request, ApiError(401, "unreachable"))


def failed_authentication(request: Request, refusal: ApiError) -> ApiError:
    """Count a failed authentication from the caller's address; ``refusal``, or 429 once over the limit."""
    address = client_address(request)
    throttle = _throttle(request)
    count = throttle.count(f"auth-fail:{address}")
    if count == access.FAILED_AUTH_BURST:
        _safely(access.failed_auth_burst, address, count, utcnow())
    if count <= throttle.per_window:
        return refusal
    wait = retry_after(utcnow().timestamp())
    message = f"too many failed authentications from your address; retry in {wait:.0f} s"
    return ApiError(429, message, headers={"Retry-After": str(int(wait))})


def _safely(action: Callable[..., None], *args: object) -> None:
    """Record an anomaly; a ledger failure is logged and never turns the answer into a 500."""
    try:
        action(*args)
    except Exception:
        log.exception("access anomaly could not be recorded")


def foreign_id(request: Request) -> None:
    """Count a 404 on an id that exists under another connection; a run of them opens an access anomaly."""
    who: Principal | None = getattr(request.state, "principal", None)
    if who is None:
        return
    count = _throttle(request).count(f"foreign-id:{who.key_id}")
    if count == access.PROBE_RUN:
        _safely(
            access.key_probing, who.key_id, client_address(request), list(who.connections), count, utcnow()
        )


async def _foreign_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ForeignId)
    await run_in_threadpool(foreign_id, request)
    return error_response(exc.status, exc.message, exc.code, exc.headers)


def install(app: FastAPI) -> None:
    """Count foreign-id 404s (the handler of the more specific exception wins over ApiError's)."""
    app.add_exception_handler(ForeignId, _foreign_error)
