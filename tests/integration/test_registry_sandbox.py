"""Both registry providers against the sandbox registry over real TLS (throwaway CA), faults included."""

from __future__ import annotations

import json
import logging
import re
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import certifi
import httpx
import pytest

from config.settings import Settings
from tests.integration.inprocess_runs import registry_numbers
from worker.company import Company, CompanyKey, CompanyStatus
from worker.connections.spec import RegistrySpec
from worker.errors import InsecureURL, RegistryAuthError, RegistryError, RegistryTransientError, SecretMissing
from worker.ratelimit.local import LocalRateLimiter
from worker.registry.factory import make_provider
from worker.registry.http import RetryPolicy
from worker.registry.port import RegistryProvider
from worker.sandbox.dataset import Dataset, make_dataset
from worker.sandbox.proff_json import proff_view
from worker.sandbox.registry import SandboxRegistry
from worker.sandbox.registry_json import brreg_view
from worker.sandbox.tls import SandboxCA

TOKEN = "proff-test-token-5f3a9c"
SETTINGS = Settings(registry_timeout_s=5.0, registry_max_retries=3, registry_concurrency=4)
FAST = RetryPolicy(max_retries=3, backoff_base_s=0.01, backoff_cap_s=0.05)
UNKNOWN_NO = ("974760673", "985399077")  # valid checksums, not in the sandbox


class SpyLimiter(LocalRateLimiter):
    """A real limiter that also remembers the penalties it was given."""

    def __init__(self) -> None:
        super().__init__(1000.0, 100)
        self.penalties: list[float] = []

    def penalise(self, retry_after_s: float) -> None:
        self.penalties.append(retry_after_s)
        super().penalise(retry_after_s)


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SandboxCA:
    ca = SandboxCA(tmp_path / "ca")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle_path))
    return ca


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return make_dataset(700, countries=("NO", "SE", "DK", "FI"), seed=21, dissolved_share=0.1)


@pytest.fixture
def registry(ca: SandboxCA, dataset: Dataset) -> Iterator[SandboxRegistry]:
    with SandboxRegistry(ca, dataset.companies, proff_token=TOKEN) as sandbox:
        yield sandbox


def provider(
    kind: str,
    registry: SandboxRegistry,
    limiter: LocalRateLimiter | None = None,
    token: str | None = TOKEN,
) -> RegistryProvider:
    base_url = registry.proff_url if kind == "proff" else registry.brreg_url
    spec = RegistrySpec(provider=kind, base_url=base_url)  # type: ignore[arg-type]
    return make_provider(spec, token, limiter or LocalRateLimiter(1000.0, 100), SETTINGS, policy=FAST)


def companies(
    dataset: Dataset, country: str | None = None, status: CompanyStatus | None = None
) -> list[Company]:
    return [
        c
        for c in dataset.companies
        if (country is None or c.country == country) and (status is None or c.status is status)
    ]


def key(company: Company) -> CompanyKey:
    return CompanyKey(company.country, company.org_number)


# --- happy paths --------------------------------------------------------------------------------------------


def test_proff_looks_up_every_country_and_dedups_keys(registry: SandboxRegistry, dataset: Dataset) -> None:
    wanted = [c for country in ("NO", "SE", "DK", "FI") for c in companies(dataset, country)[:5]]
    keys = [key(c) for c in wanted] + [key(wanted[0]), key(wanted[7])]
    proff = provider("proff", registry)

    results = proff.lookup_many(keys)
    proff.close()

    assert list(results) == [key(c) for c in wanted]
    assert [results[key(c)].company for c in wanted] == [proff_view(c) for c in wanted]
    assert proff.calls == len(wanted) == len(registry.requests)
    assert {r.headers.get("api-version") for r in registry.requests} == {"1.0"}
    assert {r.headers.get("accept") for r in registry.requests} == {"application/json"}


def test_brreg_asks_each_number_once_in_batches_and_reads_absence_as_not_found(
    registry: SandboxRegistry, dataset: Dataset
) -> None:
    active = companies(dataset, "NO", CompanyStatus.ACTIVE)[:120]
    gone = companies(dataset, "NO", CompanyStatus.DELETED)[:3]
    keys = [key(c) for c in active + gone] + [CompanyKey("NO", n) for n in UNKNOWN_NO]
    brreg = provider("brreg", registry)

    results = brreg.lookup_many(keys)
    brreg.close()

    for company in active + gone:
        assert results[key(company)].company == brreg_view(company)
    for number in UNKNOWN_NO:
        assert results[CompanyKey("NO", number)].company.status is CompanyStatus.NOT_FOUND  # type: ignore[union-attr]
    requests = registry.requests
    assert all(r.path.endswith("/enheter") for r in requests)  # no single GETs after the batches
    asked = registry_numbers(requests)
    assert sorted(asked) == sorted(k.org_number for k in keys)  # each number once
    assert gone and len(keys) > 100
    assert sorted(len(r.query["organisasjonsnummer"][0].split(",")) for r in requests) == [
        len(keys) - 100,
        100,
    ]
    assert brreg.calls == len(requests) == 2


def test_lookups_run_concurrently_but_bounded(registry: SandboxRegistry, dataset: Dataset) -> None:
    registry.latency_s = 0.2
    keys = [key(c) for c in companies(dataset, "SE")[:8]]
    proff = provider("proff", registry)

    started = time.perf_counter()
    results = proff.lookup_many(keys)
    elapsed = time.perf_counter() - started
    proff.close()

    assert all(r.ok for r in results.values())
    assert 0.4 <= elapsed < 1.5  # 8 requests, 4 at a time: two rounds of 0.2 s; one at a time would be 1.6 s


# --- faults -------------------------------------------------------------------------------------------------


def test_429_waits_for_retry_after_and_penalises_the_shared_limiter(
    registry: SandboxRegistry, dataset: Dataset
) -> None:
    registry.rate_limit(1)
    limiter = SpyLimiter()
    proff = provider("proff", registry, limiter)
    wanted = companies(dataset, "NO")[:3]

    started = time.perf_counter()
    results = [proff.lookup_many([key(c)])[key(c)] for c in wanted]  # 3 in < 1 s: one window sees two
    elapsed = time.perf_counter() - started
    proff.close()

    assert [r.company for r in results] == [proff_view(c) for c in wanted]
    assert limiter.penalties and set(limiter.penalties) == {1.0}
    assert elapsed >= 0.95
    assert len(registry.requests) == 3 + len(limiter.penalties) == proff.calls


def test_transient_5xx_is_retried_and_a_persistent_one_ends_in_a_transient_error(
    registry: SandboxRegistry, dataset: Dataset
) -> None:
    first, second = companies(dataset, "NO")[:2]
    proff = provider("proff", registry)

    registry.fail_next(2, 503)
    assert proff.lookup_many([key(first)])[key(first)].company == proff_view(first)
    assert len(registry.requests) == 3

    registry.fail_with(second.org_number, 500)
    with pytest.raises(RegistryTransientError, match="4 attempts: HTTP 500"):
        proff.lookup_many([key(second)])
    assert len(registry.requests) == 3 + 4
    proff.close()


def test_revoked_token_raises_auth_error_without_leaking_the_token(
    registry: SandboxRegistry, dataset: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    registry.revoke_token()
    proff = provider("proff", registry)
    keys = [key(c) for c in companies(dataset, "DK")[:6]]

    with caplog.at_level(logging.DEBUG), pytest.raises(RegistryAuthError) as caught:
        proff.lookup_many(keys)
    proff.close()

    assert "registry token rejected" in caught.value.message
    assert TOKEN not in caught.value.message
    assert TOKEN not in caplog.text
    assert len(registry.requests) <= len(keys)  # no retries of a 401


def test_wrong_token_is_rejected_and_proff_without_token_is_a_missing_secret(
    registry: SandboxRegistry, dataset: Dataset
) -> None:
    proff = provider("proff", registry, token="not-the-token")
    with pytest.raises(RegistryAuthError):
        proff.lookup_many([key(companies(dataset, "NO")[0])])
    proff.close()
    with pytest.raises(SecretMissing):
        provider("proff", registry, token=None)


def test_not_found_removed_and_deleted_units(registry: SandboxRegistry, dataset: Dataset) -> None:
    removed, *_ = companies(dataset, "NO", CompanyStatus.ACTIVE)
    deleted = companies(dataset, "NO", CompanyStatus.DELETED)[0]
    registry.remove(removed.org_number)
    unknown = CompanyKey("NO", UNKNOWN_NO[0])
    brreg, proff = provider("brreg", registry), provider("proff", registry)

    in_batch = brreg.lookup_many([unknown, key(removed), key(deleted)])
    alone = brreg.lookup_many([key(removed)])
    by_proff = proff.lookup_many([unknown, key(deleted)])
    brreg.close()
    proff.close()

    assert in_batch[unknown].company.status is CompanyStatus.NOT_FOUND  # type: ignore[union-attr]
    # A batch cannot tell "removed" (410) from "never existed": both are absent, and absence is not asked again.
    assert in_batch[key(removed)].company.status is CompanyStatus.NOT_FOUND  # type: ignore[union-attr]
    assert in_batch[key(deleted)].company == brreg_view(deleted)
    assert in_batch[key(deleted)].company.status is CompanyStatus.DELETED  # type: ignore[union-attr]
    assert in_batch[key(deleted)].company.name == deleted.name  # type: ignore[union-attr]
    assert alone[key(removed)].company.status is CompanyStatus.DELETED  # type: ignore[union-attr]
    assert by_proff[unknown].company.status is CompanyStatus.NOT_FOUND  # type: ignore[union-attr]
    assert by_proff[key(deleted)].company.status is CompanyStatus.INACTIVE  # type: ignore[union-attr]
    gone = [r for r in registry.requests if r.path.endswith(removed.org_number)]
    assert len(gone) == 1  # 410 is an answer, not a failure: no retry


def test_malformed_answers_are_per_record_failures(registry: SandboxRegistry, dataset: Dataset) -> None:
    healthy, broken_json, broken_shape = companies(dataset, "NO", CompanyStatus.ACTIVE)[:3]
    registry.malformed(broken_json.org_number)
    registry.malformed(broken_shape.org_number, "wrong_shape")
    keys = [key(healthy), key(broken_json), key(broken_shape)]

    for kind in ("proff", "brreg"):
        client = provider(kind, registry)
        results = client.lookup_many(keys)
        client.close()
        assert results[key(healthy)].ok, kind
        for bad in (broken_json, broken_shape):
            result = results[key(bad)]
            assert result.company is None and result.error_code == "REGISTRY_MALFORMED", kind
            assert "502" not in (result.error_message or "") and "many" not in (result.error_message or "")


def test_unsupported_country_and_invalid_numbers_never_leave_the_process(registry: SandboxRegistry) -> None:
    brreg = provider("brreg", registry)
    results = brreg.lookup_many([CompanyKey("SE", "5560125790"), CompanyKey("NO", "923609017")])
    brreg.close()
    assert [r.error_code for r in results.values()] == ["REGISTRY_UNSUPPORTED_COUNTRY", "ORGNR_INVALID"]
    assert registry.requests == []


# --- wire hygiene -------------------------------------------------------------------------------------------


def test_every_request_is_a_get_with_its_own_correlation_id_and_only_org_numbers(
    registry: SandboxRegistry, dataset: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    no = companies(dataset, "NO")[:30]
    registry.fail_next(1, 503)
    with caplog.at_level(logging.INFO):  # every logger, httpx's included
        for kind, chosen in (("proff", no[:10] + companies(dataset, "SE")[:3]), ("brreg", no)):
            client = provider(kind, registry)
            client.lookup_many([key(c) for c in chosen] + [CompanyKey("NO", UNKNOWN_NO[1])])
            client.close()

    requests = registry.requests
    ids = [r.headers.get("correlation-id") for r in requests]
    assert all(r.method == "GET" and r.body == b"" for r in requests)
    assert None not in ids and len(set(ids)) == len(requests)
    path_pattern = re.compile(
        r"^(/api/companies/register/(NO|SE|DK|FI)/\d{8,10}|/enhetsregisteret/api/enheter(/\d{9})?)$"
    )
    for request in requests:
        assert path_pattern.match(request.path), request.path
        assert set(request.query) <= {"organisasjonsnummer", "size"}
        assert all(re.fullmatch(r"[\d,]+", v) for values in request.query.values() for v in values)
        is_proff = request.path.startswith("/api/")
        assert (request.headers.get("authorization") == f"Token {TOKEN}") is is_proff
    logged = {getattr(r, "correlation_id", None) for r in caplog.records}
    assert set(ids) <= logged
    assert TOKEN not in caplog.text and "Authorization" not in caplog.text
    # INFO names the endpoint, never an org number (issue 10: up to 100 of them per line before).
    endpoints = {getattr(r, "endpoint", None) for r in caplog.records} - {None}
    assert endpoints == {
        "/api/companies/register/NO/{orgnr}",
        "/api/companies/register/SE/{orgnr}",
        "/enhetsregisteret/api/enheter?organisasjonsnummer={organisasjonsnummer}&size={size}",
    }
    everything = "\n".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    numbers = {c.org_number for c in no + companies(dataset, "SE")[:3]} | {UNKNOWN_NO[1]}
    assert [n for n in numbers if n in everything] == []


def test_masked_listing_reads_as_unsaid_and_proff_refuses_an_unknown_api_version(
    registry: SandboxRegistry, dataset: Dataset, ca: SandboxCA
) -> None:
    listing, other = companies(dataset, "NO")[:2]
    registry.mask(listing.org_number)
    proff = provider("proff", registry)
    masked = proff.lookup_many([key(listing)])[key(listing)].company
    proff.close()
    assert masked == proff_view(listing).model_copy(update={"name": None})

    url = f"{registry.proff_url}/api/companies/register/NO/{other.org_number}"
    trusted = ssl.create_default_context(cafile=str(ca.bundle_path))
    headers = {"Authorization": f"Token {TOKEN}"}
    assert httpx.get(url, verify=trusted, headers={**headers, "api-version": "1.1"}).status_code == 200
    assert httpx.get(url, verify=trusted, headers={**headers, "api-version": "2.0"}).status_code == 400


def test_sandbox_refuses_writes_and_untrusted_clients(registry: SandboxRegistry, ca: SandboxCA) -> None:
    url = f"{registry.proff_url}/api/companies/register/NO/923609016"
    trusted = ssl.create_default_context(cafile=str(ca.bundle_path))
    assert httpx.post(url, verify=trusted, json={}).status_code == 405

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(url, verify=ssl.create_default_context(cafile=certifi.where()))


def test_our_client_without_the_sandbox_ca_fails_fast_on_verification(
    registry: SandboxRegistry,
    dataset: Dataset,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    proff = provider("proff", registry)
    with (
        caplog.at_level(logging.INFO, logger="worker.registry.http"),
        pytest.raises(RegistryError, match="TLS certificate verification failed"),
    ):
        proff.lookup_many([key(companies(dataset, "NO")[0])])
    proff.close()
    attempts = [
        r
        for r in caplog.records
        if r.name == "worker.registry.http" and r.getMessage().startswith("registry GET")
    ]
    assert [getattr(r, "attempt", None) for r in attempts] == [1]  # a certificate problem is not retried
    assert proff.calls == 0 and registry.requests == []  # nothing went on the wire: no call counted


def test_http_base_url_is_refused_by_the_spec(registry: SandboxRegistry) -> None:
    with pytest.raises(InsecureURL):
        RegistrySpec(provider="brreg", base_url=registry.brreg_url.replace("https://", "http://"))
