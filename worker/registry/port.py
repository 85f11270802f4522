"""The registry port: what the sync needs from any business registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from worker.company import CompanyKey, LookupResult


class RegistryProvider(Protocol):
    """Looks up companies by (country, org number), GET only.

    ``lookup_many`` returns one LookupResult per *unique* key given. A company that does not exist or was
    deleted is a result with ``company.status`` ``not_found``/``deleted`` (never an error); a malformed answer
    is a result with ``error_code`` REGISTRY_MALFORMED. It raises only for conditions that concern the whole
    run: RegistryAuthError (401/403), or RegistryTransientError once retries are exhausted.
    ``calls`` counts HTTP requests sent (retries included), for the run's registry_calls count.
    """

    calls: int

    def lookup_many(self, keys: Sequence[CompanyKey]) -> dict[CompanyKey, LookupResult]: ...

    def close(self) -> None: ...


class RateLimiter(Protocol):
    """Blocks until one request may be sent under the registry token's limit (cluster-wide in production)."""

    def acquire(self) -> None: ...

    def penalise(self, retry_after_s: float) -> None:
        """A 429 was seen: every process using this token waits ``retry_after_s`` from now."""
        ...
