"""The HTTP API application: ``uvicorn worker.api.app:create_app --factory``.

Routes live under ``/v1`` (OpenAPI at ``/v1/openapi.json``); ``/metrics`` is outside the versioned API; the
web console (``worker.console``) under ``/console``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from config.logging import configure_logging
from config.settings import Settings, get_settings
from worker.api import access_log, access_watch, problems
from worker.api.metrics import router as metrics_router
from worker.api.middleware import ApiMiddleware, BodyLimit
from worker.api.routes import alerts, backfills, changes, health, matches, report, retention, runs
from worker.api.routes import settings as connection_settings
from worker.api.schemas import Problem
from worker.api.throttle import Throttle, make_throttle
from worker.console import app as console
from worker.infra.dispatch import CeleryDispatcher, Dispatcher

API_PREFIX = "/v1"

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": description}
    for status, description in {
        400: "Bad request; the message says what to change.",
        401: "No API key, or an unknown or revoked one.",
        403: "The key's role does not allow this.",
        404: "No such resource, or it belongs to a connection outside the key's scope.",
        413: "The request body is over REGSYNC_API_MAX_BODY_BYTES.",
        415: "A request body that is not JSON (`Content-Type: application/json`).",
        422: "The request's parameters or body are not valid.",
        429: "Too many requests for this key, or failed authentications from this address; see Retry-After.",
    }.items()
}


def create_app(
    settings: Settings | None = None,
    *,
    throttle: Throttle | None = None,
    dispatcher: Dispatcher | None = None,
) -> FastAPI:
    """A new API application (uvicorn calls it with no arguments; tests pass a throttle or a dispatcher)."""
    settings = settings or get_settings()
    configure_logging(settings.log_format, settings.log_level)
    access_log.install()  # after logging is configured: uvicorn's access log shows paths, not query strings
    app = FastAPI(
        title="regsync API",
        version="1.0.0",
        description="Job status of regsync runs, backfills and alerts, for the connections your API key may see.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        # No trailing-slash redirect: Starlette builds its Location from the Host header, which a caller sets.
        redirect_slashes=False,
    )
    app.state.dispatcher = dispatcher or CeleryDispatcher()
    app.state.throttle = throttle or make_throttle(settings.redis_url, settings.api_rate_per_minute)
    for module in (runs, backfills, alerts, connection_settings, report, changes, matches, retention):
        app.include_router(module.router, prefix=API_PREFIX, responses=_ERRORS)
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(metrics_router)
    problems.install(app)
    access_watch.install(app)
    app.openapi = problems.documented_as_problems(app.openapi)  # type: ignore[method-assign]
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)  # inside: its 413 gets the headers
    app.add_middleware(ApiMiddleware)
    console.install(app, settings)  # last: in front of the API's middleware, for /console only
    return app
