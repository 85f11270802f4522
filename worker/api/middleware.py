"""ASGI middleware of the API: correlation id, security headers on every answer, and the generic 500.

It wraps everything else, so even an error the framework would render itself (a stack trace in debug mode, a
plain-text 500) becomes the JSON error with a correlation id, and still carries the security headers.
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.api import context
from worker.api.problems import internal_error_response

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
}
CORRELATION_HEADER = "X-Correlation-ID"


class ApiMiddleware:
    """Security headers and ``X-Correlation-ID`` on every answer; any uncaught exception → generic 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid, token = context.begin(Headers(scope=scope).get(CORRELATION_HEADER))
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                headers[CORRELATION_HEADER] = cid
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception(
                "unhandled error in %s %s",
                scope.get("method"),
                scope.get("path"),
                extra={"correlation_id": cid},
            )
            if started:
                raise  # the answer is half sent; nothing sane can follow
            await internal_error_response()(scope, receive, send_with_headers)
        finally:
            context.end(token)
