"""Helpers (not a test module): a local stand-in for Healthchecks.io / Cronitor that records every ping.

Plain HTTP on 127.0.0.1, an ephemeral port, one thread per request; ``status`` and ``delay_s`` make it fail or
stall. ``url`` carries a random token path, as a real ping URL does, so tests can search logs for it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.server.arrived(self.path)
        time.sleep(self.server.delay_s)
        self.send_response(self.server.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_POST = do_HEAD = do_GET


class Receiver(ThreadingHTTPServer):
    """Records the arrival time (``time.monotonic()``) of each ping on ``token``'s path."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = secrets.token_hex(16)
        self.status, self.delay_s = 200, 0.0
        self.pings: list[float] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/ping/{self.token}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that gave up on a stalled answer (BrokenPipe) is what the stall tests want

    def arrived(self, path: str) -> None:
        with self._lock:
            self.pings.append(time.monotonic())
            self.paths.append(path)

    def count(self) -> int:
        with self._lock:
            return len(self.pings)

    def since(self, moment: float) -> list[float]:
        """Pings that arrived after ``moment`` (a ``time.monotonic()`` reading)."""
        with self._lock:
            return [at for at in self.pings if at > moment]


@contextmanager
def heartbeat_receiver() -> Iterator[Receiver]:
    """A running :class:`Receiver`, shut down afterwards."""
    receiver = Receiver()
    thread = threading.Thread(target=receiver.serve_forever, name="heartbeat-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()
