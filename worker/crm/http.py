"""The requests.Session every Salesforce call goes through: our CA bundle, TLS >= 1.2, no env overrides."""

from __future__ import annotations

import ssl
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from worker.infra.tls import ca_bundle_path, client_ssl_context


class _TLSAdapter(HTTPAdapter):
    """An HTTPAdapter whose connection pools use our verifying SSL context (minimum TLS 1.2)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        pool_kwargs["ssl_context"] = self._context
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)


def build_session(cafile: str | None = None) -> requests.Session:
    """A Session that trusts exactly ``cafile`` (default: ca_bundle_path()) and ignores the environment.

    ``trust_env`` is off on purpose: with it on, requests replaces ``Session.verify`` with the
    environment's REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE on every request, and picks up proxies and
    ~/.netrc credentials, so what we pass here would silently not be what is used.
    """
    bundle = cafile or ca_bundle_path()
    session = requests.Session()
    session.trust_env = False
    session.verify = bundle
    adapter = _TLSAdapter(client_ssl_context(bundle))
    session.mount("https://", adapter)
    # Plain http is never a Salesforce endpoint; an adapter that cannot be used makes that loud.
    session.mount("http://", _RefuseAdapter())
    return session


class _RefuseAdapter(HTTPAdapter):
    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        raise requests.exceptions.InvalidURL("regsync only talks to Salesforce over https://")
