"""Receivers for alert notices (not a test module): an HTTPS webhook endpoint that checks signatures on its own
(plain hmac, not regsync's code), an SMTP server with STARTTLS and AUTH (aiosmtpd), a TLS syslog collector."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from worker.sandbox.tls import RecordedRequest, Reply, SandboxCA, SandboxHTTPServer


def expected_signature(key: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass
class Webhook:
    """What the receiver got: the parsed JSON, the raw body, and whether the signature checked out."""

    payload: dict[str, Any]
    body: bytes
    headers: dict[str, str]
    signature_ok: bool


class WebhookReceiver:
    """HTTPS (sandbox CA) endpoint; answers ``status`` (204 by default) and verifies every signature."""

    def __init__(self, ca: SandboxCA, key: str) -> None:
        self.key = key
        self.status = 204
        self.received: list[Webhook] = []
        self._lock = threading.Lock()
        self.server = SandboxHTTPServer(ca, self._handle)

    def _handle(self, request: RecordedRequest) -> Reply:
        stamp = request.headers.get("x-regsync-timestamp", "")
        signature = request.headers.get("x-regsync-signature", "")
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
        ok = fresh and hmac.compare_digest(expected_signature(self.key, stamp, request.body), signature)
        with self._lock:
            self.received.append(
                Webhook(json.loads(request.body or b"{}"), request.body, request.headers, ok)
            )
        return Reply(self.status)

    @property
    def url(self) -> str:
        return f"{self.server.url}/hooks/regsync"

    def start(self) -> WebhookReceiver:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Mail:
    message: Message
    raw: bytes
    tls: bool
    login: str | None


@dataclass
class _MailHandler:
    mails: list[Mail] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = bytes(envelope.original_content or envelope.content)
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        self.mails.append(Mail(message_from_bytes(raw), raw, session.ssl is not None, login))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtp_server(
    ca: SandboxCA, user: str, password: str, *, starttls: bool = True
) -> Iterator[tuple[int, list[Mail]]]:
    """An SMTP server on 127.0.0.1 requiring STARTTLS (unless ``starttls=False``: it then offers none) and AUTH."""
    handler = _MailHandler()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == user.encode()
            and data.password == password.encode()
        )
        return (
            AuthResult(success=True, auth_data=data.login) if ok else AuthResult(success=False, handled=False)
        )

    port = free_port()
    options: dict[str, Any] = {"authenticator": authenticate, "auth_require_tls": starttls}
    if starttls:
        options |= {"tls_context": ca.server_context(), "require_starttls": True}
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port, handler.mails
    finally:
        controller.stop()


class SyslogCollector:
    """A TLS syslog server (RFC 5425 octet counting) that keeps every message it reads."""

    def __init__(self, ca: SandboxCA) -> None:
        self.messages: list[str] = []
        self._context = ca.server_context()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._sock.accept()
            except OSError:
                return
            with self._context.wrap_socket(raw, server_side=True) as conn:
                self.messages += _frames(_read_all(conn))

    def close(self) -> None:
        self._sock.close()


def _read_all(conn: ssl.SSLSocket) -> bytes:
    chunks = []
    while data := conn.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def _frames(data: bytes) -> list[str]:
    out = []
    while data:
        length, _, rest = data.partition(b" ")
        size = int(length)
        out.append(rest[:size].decode())
        data = rest[size:]
    return out
