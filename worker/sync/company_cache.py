"""The per-run company cache: each unique (country, org number) is asked of the registry once per run.

Accounts that share an org number may land in different chunks, handled by different workers at the same
time. Before calling the registry a chunk (1) takes what the run already fetched from the cache, (2) *claims*
the keys nobody has claimed and fetches only those (one ``lookup_many``, so brreg still batches), storing the
answers, and (3) waits for keys other chunks claimed, until their answer appears. A claim held by a chunk that
died expires after ``claim_ttl_s``; a claim whose fetch gave no company (a per-record error) is released, and
then whoever still needs that key asks the registry itself.

Stored: the canonical Company JSON (registry data, never CRM data), in a Redis hash per run (this process's
memory in the embedded demo), expiring a day after the last write and dropped when the run closes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from worker.company import Company, CompanyKey, LookupResult
from worker.registry.port import RegistryProvider

#: Seconds between two looks at keys another chunk is fetching.
POLL_S = 0.05
NO_ANSWER = "REGISTRY_NO_ANSWER"
#: Seconds between two heartbeats of a chunk that waits for other chunks' lookups.
WAIT_BEAT_S = 10.0


def field_of(key: CompanyKey) -> str:
    return f"{key.country}:{key.org_number}"


class CompanyCache(Protocol):
    """One run's fetched companies and in-flight claims."""

    def get_many(self, keys: Sequence[CompanyKey]) -> dict[CompanyKey, Company]: ...

    def claim(self, keys: Sequence[CompanyKey], owner: str, ttl_s: float) -> list[CompanyKey]:
        """Claim the keys that are unclaimed, expired or already ``owner``'s chunk's; returns those claimed.

        Raises:
            RunClosed: the run closed (worker.sync.run_closed); nothing more is fetched for it.
        """
        ...

    def put_many(self, companies: dict[CompanyKey, Company], owner: str) -> None:
        """Store fetched companies and drop ``owner``'s claims on them (a closed run's cache keeps nothing)."""
        ...

    def release(self, keys: Sequence[CompanyKey], owner: str) -> None:
        """Drop ``owner``'s claims without storing anything (the fetch gave no company)."""
        ...

    def drop(self) -> None:
        """Forget the run's cache (it closed); from now on a claim raises RunClosed and a store keeps nothing."""
        ...


def encode(company: Company) -> str:
    return company.model_dump_json(exclude_none=True)


def decode(raw: str | bytes) -> Company:
    return Company.model_validate(json.loads(raw))


def lookup_once(
    cache: CompanyCache,
    registry: RegistryProvider,
    keys: Sequence[CompanyKey],
    owner: str,
    *,
    claim_ttl_s: float = 120.0,
    while_waiting: Callable[[], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[CompanyKey, LookupResult]:
    """One result per unique key, asking the registry only for keys no other chunk of the run has or is fetching.

    Args:
        cache: This run's cache.
        registry: The connection's provider (its ``calls`` count only what this chunk sent).
        keys: Valid keys of this chunk.
        owner: ``"<chunk id>:<attempt>"``; a later attempt of the same chunk inherits its earlier claims.
        claim_ttl_s: How long a claim holds before others fetch the key themselves.
        while_waiting: Called every :data:`WAIT_BEAT_S` while waiting for other chunks (the chunk's heartbeat, so
            that its own lease does not run out meanwhile).
    """
    results: dict[CompanyKey, LookupResult] = {}
    pending = list(dict.fromkeys(keys))
    beat_at = time.monotonic() + WAIT_BEAT_S
    while pending:
        results.update({key: LookupResult(key, company) for key, company in cache.get_many(pending).items()})
        pending = [key for key in pending if key not in results]
        mine = cache.claim(pending, owner, claim_ttl_s) if pending else []
        if mine:
            results.update(_fetch(cache, registry, mine, owner))
            pending = [key for key in pending if key not in results]
        elif pending:
            sleep(POLL_S)  # every remaining key is being fetched by another chunk right now
            if while_waiting is not None and time.monotonic() >= beat_at:
                while_waiting()
                beat_at = time.monotonic() + WAIT_BEAT_S
    return results


def _fetch(
    cache: CompanyCache, registry: RegistryProvider, keys: list[CompanyKey], owner: str
) -> dict[CompanyKey, LookupResult]:
    try:
        fetched = registry.lookup_many(keys)
    except BaseException:
        cache.release(keys, owner)
        raise
    found = {key: result.company for key, result in fetched.items() if result.company is not None}
    cache.put_many(found, owner)
    cache.release([key for key in keys if key not in found], owner)
    # A provider answers every key; should one not, the chunk records a failure instead of asking forever.
    return {key: fetched.get(key) or LookupResult(key, error_code=NO_ANSWER, error_message="no registry answer")
            for key in keys}  # fmt: skip
