"""Issue 10: SSL_CERT_FILE / REQUESTS_CA_BUNDLE *add* a CA to the system trust store; TLS below 1.2 is refused.

Real HTTPS servers on 127.0.0.1, each signed by its own throwaway CA. "The system store" is the real one for the
certificate count, and a CA we put in its place (``system_ca_locations``) for the handshakes, since no public
server is reachable from a test. Every client that builds its context with ``worker.infra.tls`` is covered: httpx
(registry, alert webhooks, the heartbeat ping) and the Salesforce requests session.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import certifi
import httpx
import pytest
import requests

from worker.crm.http import build_session
from worker.infra import tls
from worker.sandbox.tls import Reply, SandboxCA, SandboxHTTPServer

Get = Callable[[str], int]


def _httpx_get(url: str) -> int:
    with httpx.Client(verify=tls.client_ssl_context(), trust_env=False, timeout=5) as client:
        return client.get(url).status_code


def _salesforce_session_get(url: str) -> int:
    return build_session().get(url, timeout=5).status_code


CLIENTS: dict[str, Get] = {"httpx": _httpx_get, "salesforce-requests": _salesforce_session_get}
REFUSED = (httpx.ConnectError, requests.exceptions.SSLError)


@pytest.fixture
def cas(tmp_path: Path) -> dict[str, SandboxCA]:
    return {name: SandboxCA(tmp_path / name) for name in ("system", "extra", "stranger")}


@pytest.fixture
def servers(cas: dict[str, SandboxCA]) -> Iterator[dict[str, str]]:
    started = {
        name: SandboxHTTPServer(ca, lambda _r: Reply(200, {"ok": True})).start() for name, ca in cas.items()
    }
    yield {name: server.url + "/" for name, server in started.items()}
    for server in started.values():
        server.stop()


@pytest.fixture
def trust(cas: dict[str, SandboxCA], monkeypatch: pytest.MonkeyPatch) -> None:
    """The 'system' CA stands in for the system store; SSL_CERT_FILE names the 'extra' CA (a corporate proxy)."""
    monkeypatch.setattr(tls, "system_ca_locations", lambda: (str(cas["system"].bundle_path), None))
    monkeypatch.setenv("SSL_CERT_FILE", str(cas["extra"].bundle_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cas["extra"].bundle_path))


@pytest.mark.usefixtures("trust")
@pytest.mark.parametrize("client", CLIENTS)
def test_the_system_store_and_the_extra_ca_are_both_trusted(client: str, servers: dict[str, str]) -> None:
    get = CLIENTS[client]
    assert get(servers["system"]) == 200
    assert get(servers["extra"]) == 200
    with pytest.raises(REFUSED):
        get(servers["stranger"])


def _subjects(context: ssl.SSLContext) -> list[str]:
    return [repr(cert["subject"]) for cert in context.get_ca_certs()]


def test_ssl_cert_file_adds_to_the_real_system_store_where_plain_openssl_replaces_it(
    cas: dict[str, SandboxCA], monkeypatch: pytest.MonkeyPatch
) -> None:
    system_file = tls.system_ca_locations()[0] or certifi.where()
    system = _subjects(ssl.create_default_context(cafile=system_file))
    extra = _subjects(ssl.create_default_context(cafile=str(cas["extra"].bundle_path)))
    assert len(system) > 10 and len(extra) == 1
    monkeypatch.setenv("SSL_CERT_FILE", str(cas["extra"].bundle_path))

    ours = _subjects(tls.client_ssl_context())

    assert set(system) | set(extra) <= set(ours)
    # The trap the issue found: OpenSSL's own default paths honour SSL_CERT_FILE by replacing the store.
    assert set(_subjects(ssl.create_default_context())) == set(extra)


def test_without_an_extra_ca_only_the_system_store_is_trusted(
    cas: dict[str, SandboxCA], servers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls, "system_ca_locations", lambda: (str(cas["system"].bundle_path), None))
    for variable in tls.EXTRA_CA_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    assert tls.extra_ca_path() is None
    assert _httpx_get(servers["system"]) == 200
    with pytest.raises(httpx.ConnectError):
        _httpx_get(servers["extra"])


def _old_tls_server(ca: SandboxCA, stop: threading.Event) -> tuple[int, list[str]]:
    """A server that speaks TLS 1.0/1.1 only; returns its port and the versions it negotiated."""
    context = ca.server_context()
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # distributions disable TLS < 1.2 at the default level
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    negotiated: list[str] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(raw, server_side=True) as conn:
                    negotiated.append(str(conn.version()))
            except (ssl.SSLError, OSError):
                raw.close()
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], negotiated


def _handshake(context: ssl.SSLContext, port: int) -> str | None:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        return conn.version()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_a_tls_1_1_only_server_is_refused(cas: dict[str, SandboxCA]) -> None:
    stop = threading.Event()
    port, negotiated = _old_tls_server(cas["extra"], stop)
    try:
        # The server really speaks TLS 1.1 to a client that allows it, so the refusal below is about the version.
        lenient = ssl.create_default_context(cafile=str(cas["extra"].bundle_path))
        lenient.minimum_version = ssl.TLSVersion.TLSv1
        lenient.set_ciphers("DEFAULT:@SECLEVEL=0")
        assert _handshake(lenient, port) == "TLSv1.1"

        with pytest.raises(ssl.SSLError, match=r"(?i)version|protocol"):
            _handshake(tls.client_ssl_context(str(cas["extra"].bundle_path)), port)
    finally:
        stop.set()
    assert negotiated == ["TLSv1.1"]


def test_the_first_existing_extra_bundle_wins_and_a_missing_file_is_ignored(
    cas: dict[str, SandboxCA], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cas["extra"].bundle_path))
    assert tls.extra_ca_path() == tls.ca_bundle_path() == str(cas["extra"].bundle_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cas["system"].bundle_path))
    assert tls.extra_ca_path() == str(cas["system"].bundle_path)
    for variable in tls.EXTRA_CA_VARIABLES:
        monkeypatch.delenv(variable)
    assert tls.extra_ca_path() is None and tls.ca_bundle_path() == certifi.where()
