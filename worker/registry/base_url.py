"""Registry base URLs as connection files give them, checked and normalised before anything is sent."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

#: Every Enhetsregisteret endpoint lives under this path (PROTOCOLS.md 2).
BRREG_API_PATH = "/enhetsregisteret/api"
BRREG_DEFAULT_BASE_URL = "https://data.brreg.no" + BRREG_API_PATH


def brreg_base_url(url: str) -> str:
    """``url`` as a brreg base: a bare host gets ``/enhetsregisteret/api``; a URL ending with it is kept.

    Raises:
        ValueError: any other path (e.g. ``/enhetsregisteret`` or ``.../api/enheter``), a query or a fragment;
            the message is one line naming the expected form.
    """
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    if not path:
        path = BRREG_API_PATH
    if not path.endswith(BRREG_API_PATH) or parts.query or parts.fragment:
        raise ValueError(
            f"brreg's base_url must end with {BRREG_API_PATH}, e.g. {BRREG_DEFAULT_BASE_URL} "
            f"(this one has path {parts.path or '/'!r}{' and a query' if parts.query else ''})"
        )
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
