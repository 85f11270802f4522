"""Helpers every registry provider shares: key checks, per-record error results, bounded concurrency."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import TypeVar

from pydantic import ValidationError

from worker.company import Company, CompanyKey, CompanyStatus, LookupResult
from worker.errors import InvalidOrgNumber, RegistryError, RegistryMalformed
from worker.orgnr import normalise

T = TypeVar("T")
R = TypeVar("R")

UNSUPPORTED_COUNTRY = "REGISTRY_UNSUPPORTED_COUNTRY"
_MAX_REASON = 200


def unique_keys(keys: Iterable[CompanyKey]) -> list[CompanyKey]:
    """The keys without duplicates, first occurrence first."""
    return list(dict.fromkeys(keys))


def checked_org_number(key: CompanyKey, countries: frozenset[str]) -> str | LookupResult:
    """The compact org number to put in a URL, or an error result if it must not be sent at all.

    Planning validates org numbers already; checking again here guarantees that nothing but a valid
    number ever reaches a registry URL.
    """
    if key.country not in countries:
        message = (
            f"this registry does not cover country {key.country!r} (only {', '.join(sorted(countries))})"
        )
        return LookupResult(key, error_code=UNSUPPORTED_COUNTRY, error_message=message)
    try:
        return normalise(key.country, key.org_number)
    except InvalidOrgNumber as exc:
        return LookupResult(key, error_code=exc.code, error_message=exc.message)


def status_only(key: CompanyKey, status: CompanyStatus) -> LookupResult:
    """A result that only says the company does not exist (not_found) or no longer exists (deleted)."""
    return LookupResult(key, Company(org_number=key.org_number, country=key.country, status=status))


def malformed(key: CompanyKey, reason: str) -> LookupResult:
    """A REGISTRY_MALFORMED result; ``reason`` must not contain body content."""
    return LookupResult(key, error_code=RegistryMalformed.code, error_message=reason[:_MAX_REASON])


def unexpected_status(key: CompanyKey, status: int) -> LookupResult:
    """A per-record result for an HTTP status the provider has no meaning for (400, 3xx, ...)."""
    return LookupResult(key, error_code=RegistryError.code, error_message=f"registry answered HTTP {status}")


def describe_validation_error(exc: ValidationError) -> str:
    """Where and why a body failed validation, without the offending values (they are body content)."""
    first = exc.errors(include_url=False, include_input=False)[:3]
    parts = [f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in first]
    more = f" (+{exc.error_count() - len(first)} more)" if exc.error_count() > len(first) else ""
    return f"registry answer has the wrong shape: {'; '.join(parts)}{more}"[:_MAX_REASON]


def run_concurrently(func: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``func`` over ``items`` in at most ``workers`` threads, results in input order.

    The first exception (e.g. RegistryAuthError) cancels what has not started yet and is re-raised.
    """
    if len(items) <= 1 or workers <= 1:
        return [func(item) for item in items]
    results: dict[int, R] = {}
    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="registry")
    try:
        futures: dict[Future[R], int] = {pool.submit(func, item): index for index, item in enumerate(items)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [results[index] for index in range(len(items))]
