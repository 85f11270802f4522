"""Client-side TLS for every outbound call: TLS 1.2 minimum, certificates verified, an extra CA *added*.

Trust is the system store (OpenSSL's compiled-in CA file and directory; certifi's bundle when the system has
no CA file, e.g. a slim container) plus one extra CA bundle from ``SSL_CERT_FILE`` or ``REQUESTS_CA_BUNDLE``
(a corporate TLS-inspecting proxy, or the sandbox's throwaway CA). OpenSSL itself would let ``SSL_CERT_FILE``
*replace* the system store; we load the system paths explicitly so the extra CA adds to them. Both the
registry (httpx) and Salesforce (requests, with ``trust_env`` off) use this.
"""

from __future__ import annotations

import os
import ssl

import certifi

#: The variables naming an extra CA bundle, in the order they are read (the first existing file wins).
EXTRA_CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def extra_ca_path() -> str | None:
    """The extra CA bundle to trust besides the system store: SSL_CERT_FILE, else REQUESTS_CA_BUNDLE, else None."""
    for variable in EXTRA_CA_VARIABLES:
        value = os.environ.get(variable)
        if value and os.path.isfile(value):
            return value
    return None


def ca_bundle_path() -> str:
    """A CA bundle file for APIs that want one path (requests' ``verify``): the extra CA, else certifi's.

    The SSL context from :func:`client_ssl_context` holds the system store as well; a file passed here is
    loaded on top of it, never instead of it.
    """
    return extra_ca_path() or certifi.where()


def system_ca_locations() -> tuple[str | None, str | None]:
    """The system store's CA file and directory as OpenSSL was built with them, ignoring SSL_CERT_FILE/_DIR."""
    paths = ssl.get_default_verify_paths()
    cafile = paths.openssl_cafile if os.path.isfile(paths.openssl_cafile) else None
    capath = paths.openssl_capath if os.path.isdir(paths.openssl_capath) else None
    return cafile, capath


def _system_store_context() -> ssl.SSLContext:
    # Python's hardened defaults (check_hostname, CERT_REQUIRED) on the system store; no system bundle file
    # (slim image, python.org macOS build): Mozilla's via certifi.
    cafile, capath = system_ca_locations()
    return ssl.create_default_context(cafile=cafile or certifi.where(), capath=capath)


def client_ssl_context(cafile: str | None = None) -> ssl.SSLContext:
    """A verifying client context (hostname checked, TLS >= 1.2) trusting the system store plus one extra CA.

    Args:
        cafile: The extra CA bundle to add; default :func:`extra_ca_path` (none when no variable is set).

    Raises:
        ssl.SSLError: The extra bundle holds no loadable certificate.
    """
    context = _system_store_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    extra = cafile or extra_ca_path()
    if extra:
        context.load_verify_locations(cafile=extra)
    return context
