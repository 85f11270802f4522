"""Registry JSON -> Company mapping, the sandbox dataset generator, retry helpers, the local rate limiter."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from stdnum import luhn

from tests.unit.fakes import make_spec
from worker.company import Address, Company, CompanyKey, CompanyStatus
from worker.connections.spec import RegistrySpec, parse_spec
from worker.errors import (
    ConfigurationError,
    InvalidOrgNumber,
    RegistryAuthError,
    RegistryMalformed,
    RegistryTransientError,
)
from worker.orgnr import normalise
from worker.ratelimit.local import LocalRateLimiter
from worker.registry.brreg import brreg_batch_results, brreg_single_result, map_brreg
from worker.registry.http import RegistryHttp, RetryPolicy, parse_retry_after
from worker.registry.proff import PROFF_STATUS_FLAGS, map_proff, proff_result
from worker.sandbox.dataset import MAPPED_FIELDS, OrgNumbers, iter_accounts, make_dataset, salesforce_id
from worker.sandbox.proff_json import proff_view, render_proff
from worker.sandbox.registry_json import brreg_view, render_brreg

NO_KEY = CompanyKey("NO", "923609016")
BASE = "https://registry.test/enhetsregisteret/api"


def proff_listing(**overrides: Any) -> dict[str, Any]:
    listing: dict[str, Any] = {
        "companyId": "IFOY7020XR7",
        "organisationNumber": "923609016",
        "name": "Nordlys Consulting AS",
        "companyType": "AS",
        "companyTypeName": "Aksjeselskap",
        "status": {"statusFlag": "ACTIVE", "description": "Aktiv"},
        "registrationDate": "02.10.1972",
        "establishedDate": "1972-09-18",
        "numberOfEmployees": "21",
        "naceCategories": ["62.010 Programmeringstjenester", "62.020 Konsulentvirksomhet"],
        "revenue": "12345",
        "homePage": "www.nordlys.no",
        "visitorAddress": {
            "addressLine": "Storgata 1",
            "boxAddressLine": None,
            "zipCode": "0150",
            "postPlace": "Oslo",
        },
        "postalAddress": {
            "addressLine": "Postboks 126",
            "boxAddressLine": None,
            "zipCode": "0101",
            "postPlace": "Oslo",
        },
        "location": {"countryPart": "Østlandet", "coordinates": [{"XCoordinate": 10.7}]},
    }
    listing.update(overrides)
    return listing


def brreg_unit(**overrides: Any) -> dict[str, Any]:
    unit: dict[str, Any] = {
        "organisasjonsnummer": "923609016",
        "navn": "NORDLYS CONSULTING AS",
        "organisasjonsform": {"kode": "AS", "beskrivelse": "Aksjeselskap", "_links": {}},
        "forretningsadresse": {
            "land": "Norge",
            "landkode": "NO",
            "postnummer": "0150",
            "poststed": "OSLO",
            "adresse": ["Storgata 1", "3. etasje"],
            "kommune": "OSLO",
            "kommunenummer": "0301",
        },
        "postadresse": {
            "landkode": "NO",
            "postnummer": "0101",
            "poststed": "OSLO",
            "adresse": ["Postboks 126"],
        },
        "naeringskode1": {"kode": "62.010", "beskrivelse": "Programmeringstjenester"},
        "antallAnsatte": 21,
        "harRegistrertAntallAnsatte": True,
        "stiftelsesdato": "1972-09-18",
        "hjemmeside": "www.nordlys.no",
        "konkurs": False,
        "underAvvikling": False,
        "underTvangsavviklingEllerTvangsopplosning": False,
        "institusjonellSektorkode": {"kode": "2100", "beskrivelse": "Private aksjeselskaper mv."},
        "_links": {"self": {"href": f"{BASE}/enheter/923609016"}},
    }
    unit.update(overrides)
    return unit


def response(status: int, body: object = None, raw: bytes | None = None) -> httpx.Response:
    content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return httpx.Response(status, content=content, request=httpx.Request("GET", "https://registry.test/x"))


# --- Proff ---------------------------------------------------------------------------------------------


def test_proff_listing_maps_every_canonical_field() -> None:
    company = map_proff(NO_KEY, proff_listing())

    assert company == Company(
        org_number="923609016",
        country="NO",
        name="Nordlys Consulting AS",
        legal_form="AS",
        status=CompanyStatus.ACTIVE,
        business_address=Address(street="Storgata 1", postal_code="0150", city="Oslo", country="NO"),
        postal_address=Address(street="Postboks 126", postal_code="0101", city="Oslo", country="NO"),
        nace_code="62.010",
        nace_text="Programmeringstjenester",
        employees=21,
        revenue=12345,
        founded=dt.date(1972, 9, 18),
        website="www.nordlys.no",
    )


def test_proff_status_flags_and_a_missing_status_is_unknown_not_active() -> None:
    # Bodies as PROTOCOLS.md 1.3/1.4 shows them; the exhaustive cases are in test_protocol_contracts.py.
    assert (
        map_proff(NO_KEY, proff_listing(status={"statusFlag": "INACTIVE"})).status is CompanyStatus.INACTIVE
    )
    assert map_proff(NO_KEY, proff_listing(status=None)).status is CompanyStatus.UNKNOWN
    assert map_proff(NO_KEY, proff_listing(status={"status": "Aktiv"})).status is CompanyStatus.UNKNOWN
    assert set(PROFF_STATUS_FLAGS) == {"ACTIVE", "INACTIVE"}


def test_proff_unknown_fields_are_ignored_and_blanks_are_none() -> None:
    listing = proff_listing(brandNewField={"nested": [1, 2]}, homePage="  ", numberOfEmployees=None)
    listing["visitorAddress"]["geo"] = "59.9,10.7"

    company = map_proff(NO_KEY, listing)

    assert company.website is None
    assert company.employees is None
    assert company.business_address is not None and company.business_address.street == "Storgata 1"


def test_proff_accepts_dotted_dates_and_numbers_as_numbers_and_ranges_as_unknown() -> None:
    company = map_proff(NO_KEY, proff_listing(establishedDate="18.09.1972", numberOfEmployees=7, revenue=10))
    assert (company.founded, company.employees, company.revenue) == (dt.date(1972, 9, 18), 7, 10)
    ranged = map_proff(NO_KEY, proff_listing(numberOfEmployees="20-49", revenue="many-secret-value"))
    assert (ranged.employees, ranged.revenue) == (None, None)


def test_proff_nace_category_without_code_keeps_only_text() -> None:
    company = map_proff(NO_KEY, proff_listing(naceCategories=["Konsulentvirksomhet"]))
    assert (company.nace_code, company.nace_text) == (None, "Konsulentvirksomhet")


@pytest.mark.parametrize(
    "payload",
    [
        proff_listing(naceCategories="many-secret-value"),
        proff_listing(visitorAddress="Storgata 1"),
        proff_listing(establishedDate="sometime"),
        {"name": "no organisation number"},
        ["not", "an", "object"],
        "just a string",
    ],
)
def test_proff_wrong_shapes_are_malformed_without_body_content(payload: object) -> None:
    with pytest.raises(RegistryMalformed) as caught:
        map_proff(NO_KEY, payload)
    assert "secret" not in caught.value.message
    assert "Storgata" not in caught.value.message
    assert len(caught.value.message) <= 200


def test_proff_answer_for_another_number_is_malformed() -> None:
    with pytest.raises(RegistryMalformed, match="different organisation number"):
        map_proff(NO_KEY, proff_listing(organisationNumber="974760673"))


def test_proff_result_maps_statuses_and_bodies() -> None:
    assert proff_result(NO_KEY, response(404, {"message": "x"})).company.status is CompanyStatus.NOT_FOUND  # type: ignore[union-attr]
    assert proff_result(NO_KEY, response(410)).error_code == "REGISTRY_ERROR"  # Proff documents no 410
    assert proff_result(NO_KEY, response(200, proff_listing())).ok

    broken = proff_result(NO_KEY, response(200, raw=b"<html>secret page</html>"))
    assert (broken.error_code, broken.error_message) == ("REGISTRY_MALFORMED", "registry answer is not JSON")
    assert proff_result(NO_KEY, response(400, {})).error_code == "REGISTRY_ERROR"


# --- brreg ---------------------------------------------------------------------------------------------


def test_brreg_unit_maps_every_field_it_has() -> None:
    company = map_brreg(NO_KEY, brreg_unit())

    assert company == Company(
        org_number="923609016",
        country="NO",
        name="NORDLYS CONSULTING AS",
        legal_form="AS",
        status=CompanyStatus.ACTIVE,
        business_address=Address(
            street="Storgata 1, 3. etasje", postal_code="0150", city="OSLO", country="NO"
        ),
        postal_address=Address(street="Postboks 126", postal_code="0101", city="OSLO", country="NO"),
        nace_code="62.010",
        nace_text="Programmeringstjenester",
        employees=21,
        founded=dt.date(1972, 9, 18),
        website="www.nordlys.no",
    )


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({}, CompanyStatus.ACTIVE),
        ({"slettedato": "2023-05-01"}, CompanyStatus.DELETED),
        ({"slettedato": "2023-05-01", "konkurs": True}, CompanyStatus.DELETED),
        ({"konkurs": True}, CompanyStatus.BANKRUPT),
        ({"konkurs": True, "underAvvikling": True}, CompanyStatus.BANKRUPT),
        ({"underAvvikling": True}, CompanyStatus.LIQUIDATION),
        ({"underTvangsavviklingEllerTvangsopplosning": True}, CompanyStatus.LIQUIDATION),
        ({"konkurs": None, "underAvvikling": None}, CompanyStatus.UNKNOWN),
        ({"konkurs": True, "underAvvikling": None}, CompanyStatus.BANKRUPT),
    ],
)
def test_brreg_status_mapping(overrides: dict[str, Any], status: CompanyStatus) -> None:
    assert map_brreg(NO_KEY, brreg_unit(**overrides)).status is status


def test_brreg_minimal_deleted_unit_and_unknown_fields() -> None:
    minimal = {"organisasjonsnummer": "923609016", "navn": "GAMMEL AS", "slettedato": "2020-01-01", "nytt": 1}
    company = map_brreg(NO_KEY, minimal)
    assert (company.status, company.name, company.business_address) == (
        CompanyStatus.DELETED,
        "GAMMEL AS",
        None,
    )


@pytest.mark.parametrize(
    "payload",
    [
        brreg_unit(antallAnsatte="mange"),
        brreg_unit(organisasjonsform="AS"),
        brreg_unit(forretningsadresse={"adresse": "Storgata 1"}),
        brreg_unit(stiftelsesdato="18.09.1972x"),
        {"navn": "no number"},
        42,
    ],
)
def test_brreg_wrong_shapes_are_malformed(payload: object) -> None:
    with pytest.raises(RegistryMalformed, match="wrong shape"):
        map_brreg(NO_KEY, payload)


def test_brreg_single_result_statuses() -> None:
    assert brreg_single_result(NO_KEY, response(404, {})).company.status is CompanyStatus.NOT_FOUND  # type: ignore[union-attr]
    assert brreg_single_result(NO_KEY, response(410, {})).company.status is CompanyStatus.DELETED  # type: ignore[union-attr]
    deleted = brreg_single_result(NO_KEY, response(200, brreg_unit(slettedato="2021-02-03")))
    assert deleted.company is not None and deleted.company.status is CompanyStatus.DELETED
    assert brreg_single_result(NO_KEY, response(200, raw=b"nope")).error_code == "REGISTRY_MALFORMED"


def test_brreg_batch_answers_every_number_and_isolates_a_malformed_one() -> None:
    numbers = ["923609016", "974760673", "985399077"]
    page = {
        "_embedded": {
            "enheter": [
                brreg_unit(),
                {"organisasjonsnummer": "974760673", "antallAnsatte": "many"},
                brreg_unit(organisasjonsnummer="111111111"),  # not asked for: ignored
                "garbage",
            ]
        },
        "page": {"size": 3, "totalElements": 2, "totalPages": 1, "number": 0},
    }

    results = brreg_batch_results(numbers, response(200, page))

    assert set(results) == set(numbers)
    assert results["923609016"].ok
    assert results["974760673"].error_code == "REGISTRY_MALFORMED"
    assert results["985399077"].company.status is CompanyStatus.NOT_FOUND  # type: ignore[union-attr]


def test_brreg_batch_without_hits_has_no_embedded_and_bad_envelopes_fail_every_number() -> None:
    numbers = ["923609016", "974760673"]
    empty = brreg_batch_results(numbers, response(200, {"page": {"totalElements": 0}}))
    assert [r.company.status for r in empty.values() if r.company] == [CompanyStatus.NOT_FOUND] * 2
    for bad in (response(200, raw=b"<html>"), response(200, {"_embedded": {"enheter": "x"}})):
        results = brreg_batch_results(numbers, bad)
        assert {r.error_code for r in results.values()} == {"REGISTRY_MALFORMED"}
        assert set(results) == set(numbers)


# --- sandbox and mappers agree on what each registry can say ------------------------------------------------


def test_rendered_dataset_companies_read_back_as_each_registry_can_say_them() -> None:
    # Not a proof of fidelity (test_protocol_contracts.py checks both sides against PROTOCOLS.md); this shows the
    # sandbox's declared views, which the run truth in stack.py uses, match what the parsers read.
    dataset = make_dataset(600, countries=("NO", "SE", "DK", "FI"), dissolved_share=0.2)
    for company in dataset.companies:
        key = CompanyKey(company.country, company.org_number)
        assert map_proff(key, json.loads(json.dumps(render_proff(company)))) == proff_view(company)
        if company.country == "NO":
            through_brreg = map_brreg(key, json.loads(json.dumps(render_brreg(company, BASE))))
            assert through_brreg == brreg_view(company)


# --- dataset generator ---------------------------------------------------------------------------------


def test_generated_org_numbers_are_valid_unique_and_well_formed() -> None:
    import random

    numbers = OrgNumbers(random.Random(3))
    for country, length in (("NO", 9), ("SE", 10), ("DK", 8), ("FI", 8)):
        generated = [numbers.next(country) for _ in range(3000)]
        assert len(set(generated)) == len(generated)
        assert all(len(n) == length and normalise(country, n) == n for n in generated)
    assert all(n[0] in "89" for n in [numbers.next("NO") for _ in range(200)])
    swedish = [numbers.next("SE") for _ in range(200)]
    assert all(n.startswith("55") and int(n[2]) >= 2 and luhn.is_valid(n) for n in swedish)


def test_dataset_kinds_follow_the_shares_and_are_what_they_say() -> None:
    dataset = make_dataset(5000, countries=("NO", "SE", "DK"), seed=11)
    kinds = Counter(dataset.kinds.values())
    assert 0.01 < kinds["invalid"] / 5000 < 0.03
    assert 0.02 < kinds["dissolved"] / 5000 < 0.04
    assert 0.01 < kinds["duplicate"] / 5000 < 0.03
    assert 0.26 < kinds["stale"] / 5000 < 0.34

    for account in dataset.accounts:
        kind = dataset.kinds[account["Id"]]
        country = account["BillingCountryCode"]
        if kind == "invalid":
            with pytest.raises(InvalidOrgNumber):
                normalise(country, account["Org_Number__c"])
            continue
        company = dataset.by_org_number[normalise(country, account["Org_Number__c"])]
        registry = {
            "Name": company.name,
            "Registry_Status__c": company.status.value,
            "Legal_Form__c": company.legal_form,
            "NumberOfEmployees": company.employees,
            "Website": company.website,
            "BillingCity": company.business_address.city if company.business_address else None,
            "Industry_Code__c": company.nace_code,
        }
        crm = {name: account[name] for name in MAPPED_FIELDS}
        if kind == "match":
            assert crm == registry
        elif kind == "stale":
            assert crm != registry and crm["Registry_Status__c"] == registry["Registry_Status__c"]
        elif kind == "dissolved":
            assert company.status is not CompanyStatus.ACTIVE and crm["Registry_Status__c"] == "active"
            if country == "NO":
                assert company.status is not CompanyStatus.DISSOLVED  # brreg cannot say "dissolved"


def test_dataset_duplicates_share_org_numbers_and_humans_type_spaces() -> None:
    dataset = make_dataset(3000, countries=("NO", "SE"), seed=5)
    valid = [a for a in dataset.accounts if dataset.kinds[a["Id"]] != "invalid"]
    per_number = Counter(normalise(a["BillingCountryCode"], a["Org_Number__c"]) for a in valid)
    duplicates = sum(1 for a in valid if dataset.kinds[a["Id"]] == "duplicate")
    assert sum(count - 1 for count in per_number.values()) == duplicates > 0
    assert len(dataset.companies) == len(per_number)
    typed = [a["Org_Number__c"] for a in dataset.accounts]
    assert any(" " in n for n in typed) and any("-" in n for n in typed)


def test_dataset_is_deterministic_and_ids_look_like_salesforce() -> None:
    first, second = make_dataset(500, seed=9), make_dataset(500, seed=9)
    assert first.accounts == second.accounts and first.companies == second.companies
    assert make_dataset(500, seed=10).accounts != first.accounts
    assert list(iter_accounts(500, seed=9)) == first.accounts
    ids = [a["Id"] for a in first.accounts]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 18 and i.startswith("001") and i.isalnum() for i in ids)


def test_salesforce_id_suffix_encodes_the_case_of_each_five_characters() -> None:
    ident = salesforce_id("001", 62**9 * 10 + 36)  # "A" at position 5 of the 10 digits, "a" at the end
    body, suffix = ident[:15], ident[15:]
    for chunk, char in zip((body[0:5], body[5:10], body[10:15]), suffix, strict=True):
        bits = sum(1 << i for i, c in enumerate(chunk) if c.isupper())
        assert char == "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]


def test_streamed_accounts_are_unique_and_as_many_as_asked() -> None:
    # Speed is measured in bench/ (planning 1M accounts), never asserted in a unit test.
    ids = [account["Id"] for account in iter_accounts(20_000, countries=("NO", "SE", "DK"))]
    assert len(ids) == len(set(ids)) == 20_000


# --- retry helpers and the HTTP layer ------------------------------------------------------------------


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)
    later = email.utils.format_datetime(now + dt.timedelta(seconds=30), usegmt=True)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(later, now=now) == 30.0
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_is_exponential_full_jitter_and_capped() -> None:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_cap_s=4.0)
    assert [policy.backoff(n, 1.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.backoff(3, 0.0) == 0.0


class RecordingLimiter:
    def __init__(self) -> None:
        self.acquired = 0
        self.penalties: list[float] = []

    def acquire(self) -> None:
        self.acquired += 1

    def penalise(self, retry_after_s: float) -> None:
        self.penalties.append(retry_after_s)


def scripted_http(replies: list[httpx.Response | Exception], **policy: Any) -> tuple[RegistryHttp, list[Any]]:
    seen: list[httpx.Request] = []
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    client = httpx.Client(transport=httpx.MockTransport(handler))
    http = RegistryHttp(
        client,
        RecordingLimiter(),
        provider="proff",
        policy=RetryPolicy(**{"max_retries": 3, **policy}),
        sleep=sleeps.append,
        jitter=lambda: 1.0,
    )
    return http, [seen, sleeps]


def test_http_retries_429_honouring_retry_after_and_penalises_the_limiter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    http, (seen, sleeps) = scripted_http(
        [
            httpx.Response(429, headers={"Retry-After": "2"}),
            httpx.Response(503),
            httpx.Response(200, json={}),
        ],
        backoff_base_s=0.1,
    )
    with caplog.at_level(logging.INFO, logger="worker.registry.http"):
        answer = http.get(
            "https://registry.test/api/companies/register/NO/923609016",
            headers={"Authorization": "Token t0k"},
        )

    assert answer.status_code == 200
    assert sleeps == [2.0, 0.2]
    assert http._limiter.penalties == [2.0]  # type: ignore[attr-defined]
    assert http._limiter.acquired == 3 == http.calls  # type: ignore[attr-defined]
    ids = [r.headers["Correlation-ID"] for r in seen]
    assert len(set(ids)) == 3
    records = [r for r in caplog.records if r.name == "worker.registry.http"]
    assert [(r.status, r.attempt) for r in records] == [(429, 1), (503, 2), (200, 3)]  # type: ignore[attr-defined]
    assert all("t0k" not in r.getMessage() and "923609016" not in r.getMessage() for r in records)


def test_http_logs_endpoint_status_duration_and_correlation_id_at_info_org_numbers_only_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    numbers = "923609016,974760673"
    http, (seen, _) = scripted_http([httpx.Response(200, json={}), httpx.Response(404)])
    with caplog.at_level(logging.DEBUG):  # every logger, httpx's own request lines included
        http.get(
            "https://registry.test/enhetsregisteret/api/enheter",
            params={"organisasjonsnummer": numbers, "size": "2"},
        )
        http.get("https://registry.test/api/companies/register/FI/20774740")

    info = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.getMessage() for r in info] == [
        "registry GET /enhetsregisteret/api/enheter?organisasjonsnummer={organisasjonsnummer}&size={size} -> 200",
        "registry GET /api/companies/register/FI/{orgnr} -> 404",
    ]
    for record, request in zip(info, seen, strict=True):
        assert record.correlation_id == request.headers["Correlation-ID"]  # type: ignore[attr-defined]
        assert record.elapsed_ms >= 0 and record.status in (200, 404)  # type: ignore[attr-defined]
        assert record.endpoint in record.getMessage()  # type: ignore[attr-defined]
        assert not any(
            n in json.dumps(record.__dict__, default=str) for n in ("923609016", "974760673", "20774740")
        )
    debug = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)
    assert numbers.replace(",", "%2C") in debug and "20774740" in debug


def test_http_429_without_retry_after_backs_off_exponentially_and_penalises_as_long() -> None:
    http, (_, sleeps) = scripted_http(
        [httpx.Response(429), httpx.Response(429), httpx.Response(200)], backoff_base_s=0.1
    )
    assert http.get("https://registry.test/x").status_code == 200
    assert sleeps == [0.1, 0.2]
    assert http._limiter.penalties == [0.1, 0.2]  # type: ignore[attr-defined]


def test_http_gives_up_after_retries_and_never_retries_auth_failures() -> None:
    http, (seen, _) = scripted_http([httpx.ConnectTimeout("slow")] * 4)
    with pytest.raises(RegistryTransientError, match="4 attempts: timeout"):
        http.get("https://registry.test/x")
    assert len(seen) == 4

    http, (seen, _) = scripted_http([httpx.Response(403)])
    with pytest.raises(RegistryAuthError, match="registry token rejected") as caught:
        http.get("https://registry.test/x", headers={"Authorization": "Token t0k"})
    assert "t0k" not in str(caught.value) and len(seen) == 1


def test_http_does_not_sleep_through_a_very_long_retry_after() -> None:
    http, _ = scripted_http([httpx.Response(429, headers={"Retry-After": "3600"})])
    with pytest.raises(RegistryTransientError) as caught:
        http.get("https://registry.test/x")
    assert caught.value.retry_after == 3600.0


def test_http_client_refuses_anything_but_https_get() -> None:
    from config.settings import Settings
    from worker.registry.http import make_client

    with make_client(Settings()) as client:
        for method in ("POST", "PATCH", "PUT", "DELETE"):
            with pytest.raises(Exception, match="only reads"):
                client.request(method, "https://registry.test/x")
        with pytest.raises(Exception, match="https"):
            client.get("http://registry.test/x")


# --- local rate limiter --------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_limiter_allows_a_burst_then_paces_at_the_rate() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(4.0, 2, clock=clock, sleep=clock.sleep)

    for _ in range(6):
        limiter.acquire()

    assert clock.now - 100.0 == pytest.approx(1.0)  # 2 free, then 4 more at 4/s
    assert all(s == pytest.approx(0.25) for s in clock.slept)


def test_limiter_penalty_stops_everyone_and_refills_from_empty() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(10.0, 5, clock=clock, sleep=clock.sleep)
    limiter.acquire()

    limiter.penalise(3.0)
    limiter.acquire()

    assert clock.now == pytest.approx(103.1)  # waited out the penalty, then one token's worth
    limiter.penalise(1.0)
    limiter.penalise(0.5)  # a shorter penalty never shortens a longer one
    limiter.acquire()
    assert clock.now == pytest.approx(104.2)


def test_limiter_is_thread_safe_under_real_time() -> None:
    limiter = LocalRateLimiter(200.0, 5)
    started = time.monotonic()

    def five() -> None:
        for _ in range(5):
            limiter.acquire()

    threads = [threading.Thread(target=five) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # 40 tokens: 5 from the burst, 35 at 200/s = 0.175 s at the least.
    assert time.monotonic() - started >= 0.17


# --- brreg base_url --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        "https://data.brreg.no",
        "https://data.brreg.no/",
        "https://data.brreg.no/enhetsregisteret/api",
        "https://data.brreg.no/enhetsregisteret/api/",
    ],
)
def test_brreg_base_url_bare_host_is_completed_and_the_api_path_kept(given: str) -> None:
    spec = RegistrySpec(provider="brreg", base_url=given)
    assert spec.base_url == "https://data.brreg.no/enhetsregisteret/api"
    assert RegistrySpec(provider="proff", base_url="https://api.proff.no/").base_url == "https://api.proff.no"


@pytest.mark.parametrize(
    "given",
    [
        "https://data.brreg.no/enhetsregisteret",
        "https://data.brreg.no/enhetsregisteret/api/enheter",
        "https://data.brreg.no/api",
        "https://data.brreg.no/enhetsregisteret/api?size=100",
    ],
)
def test_brreg_base_url_with_another_path_is_refused_in_one_line(given: str) -> None:
    data = make_spec().model_dump(mode="json", exclude_defaults=True)
    data["registry"] = {"provider": "brreg", "base_url": given}
    with pytest.raises(ConfigurationError) as caught:
        parse_spec(data)
    message = caught.value.message
    assert "\n" not in message and "must end with /enhetsregisteret/api" in message
    assert "https://data.brreg.no/enhetsregisteret/api" in message


def test_http_keeps_the_query_a_url_carries_and_adds_the_params() -> None:
    http, (seen, _sleeps) = scripted_http([httpx.Response(200, json={}), httpx.Response(200, json={})])

    http.get("https://registry.test/api/changes/register/NO?scrollId=c2Nyb2xs")
    http.get("https://registry.test/enheter?size=5", params={"organisasjonsnummer": "915238475"})

    assert [dict(request.url.params) for request in seen] == [
        {"scrollId": "c2Nyb2xs"},
        {"size": "5", "organisasjonsnummer": "915238475"},
    ]
