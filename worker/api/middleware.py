"""ASGI middleware of the API: correlation id and audit-origin slot, security headers on every answer, the generic
500, and the body cap (413 before anything reads a body, authentication included).

It wraps everything else, so even an error the framework would render itself (a stack trace in debug mode, a
plain-text 500) becomes the JSON error with a correlation id, and still carries the security headers.
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.api import context
from worker.api.problems import error_response, internal_error_response
from worker.ledger.origin import request_scope

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
            with request_scope():  # the caller dependency fills it once the API key is known
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


class BodyLimit:
    """413 for a request body over ``max_bytes`` (checked on ``Content-Length`` and while streaming), and 415
    for one that is not JSON; both before the route, so before the API key is checked."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self.refuse(scope, receive, send)
            return
        has_body = (length is not None and int(length) > 0) or "transfer-encoding" in headers
        if has_body and not _is_json(headers.get("content-type", "")):
            answer = error_response(415, "a request body must be JSON: send `Content-Type: application/json`")
            await answer(scope, receive, send)
            return
        await _Counted(self, scope, receive, send).run()

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is larger than {self.max_bytes} bytes"
        await error_response(413, message, headers={"Connection": "close"})(scope, receive, send)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class _Counted:
    """One request whose body is counted as the app reads it; past the cap, 413 and a disconnect."""

    def __init__(self, limit: BodyLimit, scope: Scope, receive: Receive, send: Send) -> None:
        self.limit, self.scope, self._receive, self._send = limit, scope, receive, send
        self.seen = 0
        self.refused = False
        self.started = False

    async def run(self) -> None:
        await self.limit.app(self.scope, self.receive, self.send)

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or self.refused:
            return message
        self.seen += len(message.get("body", b""))
        if self.seen <= self.limit.max_bytes:
            return message
        self.refused = True
        if not self.started:
            await self.limit.refuse(self.scope, self._receive, self._send)
        return {"type": "http.disconnect"}  # the app stops reading; whatever it answers is dropped

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)
