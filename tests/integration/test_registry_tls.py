"""The registry clients' TLS 1.2 minimum, shown on the wire: Proff and brreg refuse a server that offers TLS 1.1.

The server is a real HTTPS server (throwaway CA, trusted through SSL_CERT_FILE) whose context is capped at a
chosen TLS version; it logs every handshake and every HTTP request it serves. Two controls make the refusal
mean something: a client that allows TLS 1.0+ does reach the TLS 1.1 server (so the local OpenSSL can speak
1.1 and the server works), and our providers do reach the same server once it offers TLS 1.2. Against the
TLS 1.1 server no request, and so no Proff token, ever leaves the process. (Salesforce's side:
tests/integration/test_salesforce_tls.py.)
"""

from __future__ import annotations

import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from config.settings import Settings
from worker.company import CompanyKey
from worker.connections.spec import RegistrySpec
from worker.errors import RegistryError
from worker.infra.tls import client_ssl_context
from worker.ratelimit.local import LocalRateLimiter
from worker.registry.factory import make_provider
from worker.registry.http import RetryPolicy
from worker.registry.port import RegistryProvider

TOKEN = "proff-tls-test-token-7c1d"
SETTINGS = Settings(registry_timeout_s=5.0, registry_max_retries=1, registry_concurrency=2)
ONE_RETRY = RetryPolicy(max_retries=1, backoff_base_s=0.01, backoff_cap_s=0.02)
KEY = CompanyKey("NO", "923609016")
PROVIDERS = ["proff", "brreg"]


def allow_legacy(context: ssl.SSLContext, highest: str = "TLSv1_3") -> None:
    """Let ``context`` speak TLS 1.0 up to ``highest`` (deprecated versions: test peers only, warning muted)."""
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS < 1.2 at the default security level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = getattr(ssl.TLSVersion, highest)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CappedTlsServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.server.requests.append((self.path, {k.lower() for k in self.headers}))
        body = b'{"message": "not found"}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class CappedTlsServer(ThreadingHTTPServer):
    """An HTTPS server that speaks no TLS version above ``highest``; answers 404 to every GET."""

    daemon_threads = True

    def __init__(self, cert: trustme.LeafCert, highest: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        allow_legacy(self.context, highest)
        cert.configure_cert(self.context)
        #: Per connection: the negotiated version, or "refused: <OpenSSL reason>".
        self.handshakes: list[str] = []
        #: Per HTTP request served: (path, header names).
        self.requests: list[tuple[str, set[str]]] = []

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.handshakes.append(f"refused: {getattr(exc, 'reason', None) or exc}")
            return
        try:
            self.handshakes.append(str(tls.version()))
            # typeshed types RequestHandlerClass's server argument as an unbound Self.
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            tls.close()


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    authority = trustme.CA()
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    return authority


@contextmanager
def capped_server(ca: trustme.CA, highest: str) -> Iterator[CappedTlsServer]:
    server = CappedTlsServer(ca.issue_cert("127.0.0.1", "localhost"), highest)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def provider(kind: str, server: CappedTlsServer) -> RegistryProvider:
    base_url = server.url if kind == "proff" else server.url + "/enhetsregisteret/api"
    spec = RegistrySpec(provider=kind, base_url=base_url)  # type: ignore[arg-type]
    return make_provider(spec, TOKEN, LocalRateLimiter(1000.0, 100), SETTINGS, policy=ONE_RETRY)


def test_the_tls_1_1_server_is_reachable_by_a_client_that_allows_it(ca: trustme.CA, tmp_path: Path) -> None:
    """Control: the refusals below come from our clients' minimum, not from a server nobody can talk to."""
    legacy = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    allow_legacy(legacy)
    with capped_server(ca, "TLSv1_1") as server, httpx.Client(verify=legacy) as client:
        response = client.get(server.url + "/probe")

    assert response.status_code == 404
    assert server.handshakes == ["TLSv1.1"]
    assert [path for path, _ in server.requests] == ["/probe"]


@pytest.mark.parametrize("kind", PROVIDERS)
def test_the_provider_reaches_the_same_server_offering_tls_1_2(kind: str, ca: trustme.CA) -> None:
    with capped_server(ca, "TLSv1_2") as server:
        registry = provider(kind, server)
        try:
            results = registry.lookup_many([KEY])
        finally:
            registry.close()

    assert list(results) == [KEY]
    assert server.handshakes and set(server.handshakes) == {"TLSv1.2"}
    assert len(server.requests) == registry.calls >= 1


@pytest.mark.parametrize("kind", PROVIDERS)
def test_the_provider_refuses_a_tls_1_1_server_before_sending_anything(kind: str, ca: trustme.CA) -> None:
    with capped_server(ca, "TLSv1_1") as server:
        registry = provider(kind, server)
        try:
            with pytest.raises(RegistryError) as caught:
                registry.lookup_many([KEY])
        finally:
            registry.close()

    assert server.requests == []  # no GET, no Authorization header, no org number reached the server
    # The one connection attempt died in the handshake, on the version; a version refusal is not retried. No request
    # went on the wire, so none is counted against the registry's quota.
    assert len(server.handshakes) == 1 and registry.calls == 0
    assert set(server.handshakes) == {"refused: UNSUPPORTED_PROTOCOL"}
    assert KEY.org_number not in caught.value.message and TOKEN not in caught.value.message


@pytest.mark.parametrize("kind", PROVIDERS)
def test_a_tls_1_1_server_is_a_permanent_error_that_says_tls(kind: str, ca: trustme.CA) -> None:
    with capped_server(ca, "TLSv1_1") as server:
        registry = provider(kind, server)
        try:
            with pytest.raises(RegistryError) as caught:
                registry.lookup_many([KEY])
        finally:
            registry.close()

    assert not caught.value.transient
    assert "TLS" in caught.value.message
    assert len(server.handshakes) == 1


def test_the_client_context_refuses_tls_1_1_in_the_handshake(ca: trustme.CA) -> None:
    """The same refusal one layer down: a bare handshake with worker.infra.tls's context, which make_client uses."""
    context = client_ssl_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with (
        capped_server(ca, "TLSv1_1") as server,
        socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as raw,
        pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    assert server.handshakes == ["refused: UNSUPPORTED_PROTOCOL"]
