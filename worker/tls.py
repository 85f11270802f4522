"""Client-side TLS for every outbound call: TLS 1.2 minimum, certificates verified, custom CA honoured.

A custom CA (corporate proxy, or the sandbox's throwaway CA) comes from ``SSL_CERT_FILE`` or
``REQUESTS_CA_BUNDLE``; otherwise the system/certifi store is used. Both the registry (httpx) and
Salesforce (requests, with ``trust_env`` off so the environment cannot silently override us) use this.
"""

from __future__ import annotations

import os
import ssl

import certifi


def ca_bundle_path() -> str:
    """The CA bundle file to trust: SSL_CERT_FILE, else REQUESTS_CA_BUNDLE, else certifi's."""
    for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        value = os.environ.get(variable)
        if value and os.path.isfile(value):
            return value
    return certifi.where()


def client_ssl_context(cafile: str | None = None) -> ssl.SSLContext:
    """A verifying client context (hostname checked, TLS >= 1.2) trusting ``cafile`` or ca_bundle_path()."""
    context = ssl.create_default_context(cafile=cafile or ca_bundle_path())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context
