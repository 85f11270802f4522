"""The console application and how the API app serves it under ``/console``.

It is a FastAPI app of its own, reached through :class:`ConsoleMount` in front of the API's middleware: the
API's JSON-only body rule and its ``default-src 'none'`` policy would refuse forms and stylesheets. The console
keeps the API's correlation ids and generic 500 (``ApiMiddleware``) and sends a policy of its own.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.settings import Settings
from worker.api.middleware import ApiMiddleware
from worker.api.throttle import Throttle
from worker.console import errors
from worker.console.auth import PREFIX
from worker.console.render import STATIC
from worker.console.routes import alerts, audit, connections, report, review, review_matches, runs, signin
from worker.console.sessions import SessionStore, make_store
from worker.infra.dispatch import Dispatcher

#: Scripts, styles and images from the console itself only; forms post only to it; never framed.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class ConsoleHeaders:
    """The console's Content-Security-Policy (replacing the API's) on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Content-Security-Policy"] = POLICY
            await send(message)

        await self.app(scope, receive, send_with_policy)


class ConsoleMount:
    """Sends ``/console`` and below to the console, everything else to the API."""

    def __init__(self, app: ASGIApp, console: ASGIApp) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.console(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_console(
    settings: Settings, *, throttle: Throttle, dispatcher: Dispatcher, sessions: SessionStore | None = None
) -> FastAPI:
    """The console app; it shares the API app's throttle (failed sign-ins, probes) and dispatcher."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)
    app.state.settings = settings
    app.state.throttle = throttle
    app.state.dispatcher = dispatcher
    app.state.sessions = sessions or make_store(settings)
    for module in (signin, connections, runs, alerts, review, review_matches, report, audit):
        app.include_router(module.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="static")
    errors.install(app)
    return app


def install(api: FastAPI, settings: Settings) -> None:
    """Serve the console from ``api`` under ``/console`` (call it after the API's own middleware is added)."""
    console = create_console(settings, throttle=api.state.throttle, dispatcher=api.state.dispatcher)
    api.state.console = console
    api.add_middleware(ConsoleMount, console=ConsoleHeaders(ApiMiddleware(console)))
