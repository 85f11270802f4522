"""The dead-man's switch: beat pings an outside monitor (Healthchecks.io, Cronitor) so regsync's death is noticed.

The monitor expects a ping every interval and alerts its own channels when one is late. A thread in the beat
process sends it, apart from beat's scheduler loop: a slow monitor never delays a tick, a long tick never delays
a ping. The URL's path is the monitor's token, so log lines name the scheme and host only, and the whole URL is
registered with the log redaction in case a third-party logger (httpx at INFO) prints it.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from urllib.parse import urlsplit

import httpx

from config.logging import register_secret
from worker.infra.tls import client_ssl_context

log = logging.getLogger(__name__)

#: Longest wait for the monitor's answer, seconds (never more than the interval).
PING_TIMEOUT_S = 10.0


def public_part(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what a log line may say about the heartbeat URL."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def ping_once(client: httpx.Client, url: str) -> bool:
    """One GET of ``url``; True when the monitor answered 2xx. Failures are logged (host only), never raised."""
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        log.warning("heartbeat ping to %s failed: %s", public_part(url), type(exc).__name__)
        return False
    if response.is_success:
        return True
    log.warning("heartbeat ping to %s answered HTTP %s", public_part(url), response.status_code)
    return False


def _token_part(url: str) -> str:
    """The path and query of ``url``: the monitor's token, wherever a log line might show it."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class DeadMansSwitch(threading.Thread):
    """A daemon thread that pings ``url`` every ``interval_s`` until :meth:`stop`."""

    def __init__(self, url: str, interval_s: float) -> None:
        super().__init__(name="regsync-deadman", daemon=True)
        self.url, self.interval_s = url, interval_s
        self.sent = self.failed = 0
        self._stopped = threading.Event()
        register_secret(url)
        register_secret(_token_part(url))

    def _client(self) -> httpx.Client:
        timeout = min(PING_TIMEOUT_S, self.interval_s)
        return httpx.Client(
            verify=client_ssl_context(),
            trust_env=False,
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": "regsync-beat"},
        )

    def run(self) -> None:
        try:
            client = self._client()
        except (
            ssl.SSLError,
            OSError,
        ) as exc:  # an unloadable SSL_CERT_FILE: the monitor will notice, say why
            log.error(
                "dead-man's switch not started: no TLS context (%s); check SSL_CERT_FILE", type(exc).__name__
            )
            return
        log.info("dead-man's switch: pinging %s every %s s", public_part(self.url), self.interval_s)
        with client:
            self._loop(client)

    def _loop(self, client: httpx.Client) -> None:
        due = time.monotonic()
        while not self._stopped.is_set():
            self.sent += 1
            self.failed += not ping_once(client, self.url)
            # Never a burst to catch up after a slow answer: the next ping is one interval on, or now.
            due = max(due + self.interval_s, time.monotonic())
            self._stopped.wait(due - time.monotonic())

    def stop(self) -> None:
        self._stopped.set()
