"""A throwaway certificate authority and a threaded HTTPS server base for the sandbox servers."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme


class SandboxCA:
    """A trustme CA with one server certificate for 127.0.0.1 / localhost; its PEM is written to a file."""

    def __init__(self, directory: Path) -> None:
        self._ca = trustme.CA()
        self._cert = self._ca.issue_cert("127.0.0.1", "localhost", "::1")
        directory.mkdir(parents=True, exist_ok=True)
        self.bundle_path = directory / "sandbox-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.bundle_path))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._cert.configure_cert(context)
        return context


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request a sandbox server received, for privacy and call-count assertions."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass(slots=True)
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


Route = Callable[[RecordedRequest], Reply]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the sandbox's request log is the record

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            at=time.time(),
        )
        self.server.record(request)
        reply = self.server.dispatch(request)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        payload = reply.raw
        if payload is None:
            payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if reply.raw is None and reply.body is not None:
            self.send_header("Content-Type", "application/json;charset=UTF-8")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle


class SandboxHTTPServer(ThreadingHTTPServer):
    """An HTTPS server on 127.0.0.1 (ephemeral port) that records requests and dispatches to ``handler``."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, ca: SandboxCA, handler: Route) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._context = ca.server_context()
        self._handler = handler
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        #: How many replies of each HTTP status were sent (429s for the rate-limit benchmarks and tests).
        self.statuses: Counter[int] = Counter()
        self._thread: threading.Thread | None = None

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        # Headers and body leave in separate writes: without NODELAY, Nagle + the client's delayed ACK add ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The TLS handshake happens in the per-connection thread, so a slow client cannot stall accept().
        return self._context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def reply_counts(self) -> Counter[int]:
        """A copy of ``statuses``."""
        with self._lock:
            return Counter(self.statuses)

    def clear_log(self) -> None:
        """Forget the recorded requests and the reply counts."""
        with self._lock:
            self.requests.clear()
            self.statuses.clear()

    def dispatch(self, request: RecordedRequest) -> Reply:
        try:
            reply = self._handler(request)
        except Exception as exc:  # a sandbox bug must show up as a 500, like a real server's
            reply = Reply(500, {"error": f"sandbox error: {type(exc).__name__}"})
        with self._lock:
            self.statuses[reply.status] += 1
        return reply

    def start(self) -> SandboxHTTPServer:
        self._thread = threading.Thread(target=self.serve_forever, name="sandbox-https", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
