"""Builds a connection's change feed, on the same kind of HTTP client and rate limiter as its lookups."""

from __future__ import annotations

from config.settings import Settings
from worker.connections.spec import RegistrySpec
from worker.errors import SecretMissing
from worker.feeds.brreg import DEFAULT_PAGE_SIZE, BrregFeed
from worker.feeds.port import ChangeFeed
from worker.feeds.proff import ProffFeed
from worker.registry.http import RegistryHttp, RetryPolicy, make_client
from worker.registry.port import RateLimiter


def feed_http(
    spec: RegistrySpec, limiter: RateLimiter, settings: Settings, *, policy: RetryPolicy | None = None
) -> RegistryHttp:
    """A verifying, GET-only, retrying HTTP client whose every request takes a token from ``limiter``.

    Pass the limiter the connection's lookups use (the registry token's limit is shared). Close ``.client``
    when done, or reuse the provider's RegistryHttp instead.
    """
    policy = policy or RetryPolicy.from_settings(settings)
    return RegistryHttp(make_client(settings), limiter, provider=spec.provider, policy=policy)


def feed_for(
    spec: RegistrySpec,
    token: str | None,
    http: RegistryHttp,
    *,
    country: str = "NO",
    size: int = DEFAULT_PAGE_SIZE,
) -> ChangeFeed:
    """The change feed of ``spec``'s registry for ``country`` (brreg: NO only; Proff's spec lists only NO).

    Args:
        spec: the connection's registry section (provider and https base URL).
        token: the registry token secret; Proff needs one, brreg ignores it.
        http: the client to send requests with (its ``calls`` become the feed's ``calls``).
        country: the feed's country.
        size: brreg rows per request (1..10,000); Proff's page size is Proff's.

    Raises:
        SecretMissing: Proff without a token.
        ValueError: brreg for a country other than NO, or a size out of range.
    """
    if spec.provider == "brreg":
        if country != "NO":
            raise ValueError("brreg's change feed is Norwegian only")
        return BrregFeed(spec.base_url, http, size=size)
    if not token:
        raise SecretMissing(
            "registry_token is not set and Proff needs it; "
            "set it with `regsync secret set CONNECTION registry_token`"
        )
    return ProffFeed(spec.base_url, token, http, country=country)
