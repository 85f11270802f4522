"""Builds the registry provider a connection's spec asks for, with its own HTTP client and retry policy."""

from __future__ import annotations

from config.settings import Settings
from worker.connections.spec import RegistrySpec
from worker.errors import SecretMissing
from worker.registry.brreg import BrregProvider
from worker.registry.http import RegistryHttp, RetryPolicy, make_client
from worker.registry.port import RateLimiter, RegistryProvider
from worker.registry.proff import ProffProvider


def make_provider(
    spec: RegistrySpec,
    token: str | None,
    limiter: RateLimiter,
    settings: Settings,
    *,
    policy: RetryPolicy | None = None,
) -> RegistryProvider:
    """The provider for ``spec``; close it when done (it owns a connection pool).

    Args:
        spec: the connection's registry section (provider name and https base URL).
        token: the registry token secret; Proff needs one, brreg ignores it.
        limiter: shared by every process that uses this token.
        settings: timeouts, retries and concurrency.
        policy: overrides the retry/backoff policy derived from settings (tests, benchmarks).

    Raises:
        SecretMissing: Proff without a token.
    """
    policy = policy or RetryPolicy.from_settings(settings)
    if spec.provider == "proff" and not token:
        raise SecretMissing(
            "registry_token is not set and Proff needs it; "
            "set it with `regsync secret set CONNECTION registry_token`"
        )
    http = RegistryHttp(make_client(settings), limiter, provider=spec.provider, policy=policy)
    if spec.provider == "proff":
        assert token is not None
        return ProffProvider(spec.base_url, token, http, concurrency=settings.registry_concurrency)
    return BrregProvider(spec.base_url, http, concurrency=settings.registry_concurrency)
