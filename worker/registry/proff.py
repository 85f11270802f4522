"""The Proff provider: ``GET {base}/api/companies/register/{CC}/{orgnr}`` for NO, SE, DK and FI.

Reads Proff's RegisterCompany body as ../shared/PROTOCOLS.md section 1 describes it; every other key is ignored::

    {
      "organisationNumber": "924880155", "name": "KARI NORDMANN DESIGN",
      "companyType": "ENK", "companyTypeName": "Enkeltpersonforetak",
      "status": {"statusFlag": "ACTIVE", "description": "Aktiv"},     # ACTIVE | INACTIVE
      "registrationDate": "14.02.2022", "establishedDate": "2022-02-01",
      "naceCategories": ["62.010 Programmeringstjenester", ...],       # "code text"; the first is the main one
      "numberOfEmployees": "1", "revenue": "842",                      # strings: a number, a range or free text
      "homePage": "www.nordmanndesign.no",
      "postalAddress": {"addressLine": "...", "boxAddressLine": "...", "zipCode": "0184", "postPlace": "Oslo"},
      "visitorAddress": {... same shape ...}
    }

Fail closed on meaning, tolerate noise: a missing ``status`` or a flag other than ACTIVE/INACTIVE is
``unknown``, never ``active``; an employee count or revenue that is not a plain whole number (a range such as
"10-19", free text) is None, i.e. "Proff did not say"; blanks, ``null`` and masked ``"***"`` values are None;
omitted and unknown keys are fine. Personal data (``personRoles``, ``contactPerson``, birth dates) is declared in
no model here, so it is never read into regsync, stored or logged.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from worker.company import Address, Company, CompanyKey, CompanyStatus, LookupResult
from worker.errors import RegistryMalformed
from worker.registry.http import RegistryHttp
from worker.registry.lookup import (
    checked_org_number,
    describe_validation_error,
    malformed,
    run_concurrently,
    status_only,
    unexpected_status,
    unique_keys,
)
from worker.registry.search import MAX_CANDIDATES, Candidate, search_answer

PROFF_COUNTRIES: frozenset[str] = frozenset({"NO", "SE", "DK", "FI"})
#: The ``api-version`` header: 1.0 is Proff's stable default (1.1 is "experimental").
PROFF_API_VERSION = "1.0"

#: ``status.statusFlag`` values (PROTOCOLS.md 1.4); anything else, or no flag, is UNKNOWN.
PROFF_STATUS_FLAGS: dict[str, CompanyStatus] = {
    "ACTIVE": CompanyStatus.ACTIVE,
    "INACTIVE": CompanyStatus.INACTIVE,
}

_DOTTED_DATE = re.compile(r"(\d{2})\.(\d{2})\.(\d{4})")
_WHOLE_NUMBER = re.compile(r"-?\d+")
_MASKED = re.compile(r"\*+")
_SPACES = re.compile(r"[\s\u00a0\u202f]")


def _no_value(value: Any) -> Any:
    """Blank and masked (``"***"``) strings say nothing: None."""
    if isinstance(value, str) and (not value.strip() or _MASKED.fullmatch(value.strip())):
        return None
    return value


def _date(value: Any) -> Any:
    """``dd.MM.yyyy`` (registrationDate) to a date; ISO (establishedDate) passes through to pydantic."""
    match = _DOTTED_DATE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return value
    day, month, year = (int(part) for part in match.groups())
    return dt.date(year, month, day)  # an impossible day raises ValueError: a validation error


def _whole_number(value: Any) -> int | None:
    """A plain whole number (``"842"``, ``"1 204"``, ``7``); a range, free text or fraction is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        compact = _SPACES.sub("", value)
        return int(compact) if _WHOLE_NUMBER.fullmatch(compact) else None
    return None


def _count(value: Any) -> int | None:
    number = _whole_number(value)
    return number if number is not None and number >= 0 else None


def _object_or_none(value: Any) -> Any:
    """A ``status`` that is not an object is not understood: no status (unknown), not a rejected body."""
    return value if isinstance(value, dict) else None


Text = Annotated[str | None, BeforeValidator(_no_value)]
ProffDate = Annotated[dt.date | None, BeforeValidator(_date), BeforeValidator(_no_value)]
Count = Annotated[int | None, BeforeValidator(_count)]
Amount = Annotated[int | None, BeforeValidator(_whole_number)]


class _ProffModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class ProffAddress(_ProffModel):
    address_line: Text = None
    box_address_line: Text = None
    zip_code: Text = None
    post_place: Text = None


class ProffStatus(_ProffModel):
    status_flag: Text = None


class ProffCompany(_ProffModel):
    """The keys of a RegisterCompany body regsync reads; nothing about persons is declared here."""

    organisation_number: str
    name: Text = None
    company_type: Text = None
    status: Annotated[ProffStatus | None, BeforeValidator(_object_or_none)] = None
    registration_date: ProffDate = None
    established_date: ProffDate = None
    number_of_employees: Count = None
    revenue: Amount = None
    nace_categories: list[Text] | None = None
    home_page: Text = None
    visitor_address: ProffAddress | None = None
    postal_address: ProffAddress | None = None


def proff_status(listing: ProffCompany) -> CompanyStatus:
    """ACTIVE/INACTIVE from ``status.statusFlag``; a missing or unknown flag is UNKNOWN, never ACTIVE."""
    flag = listing.status.status_flag if listing.status else None
    return PROFF_STATUS_FLAGS.get((flag or "").strip().upper(), CompanyStatus.UNKNOWN)


def _address(address: ProffAddress | None, country: str) -> Address | None:
    if address is None:
        return None
    street = address.address_line or address.box_address_line
    if not (street or address.zip_code or address.post_place):
        return None
    return Address(street=street, postal_code=address.zip_code, city=address.post_place, country=country)


def _nace(categories: list[str | None] | None) -> tuple[str | None, str | None]:
    """("62.010", "Programmeringstjenester") from "62.010 Programmeringstjenester", split on the first space."""
    main = next((category.strip() for category in categories or [] if category), None)
    if main is None:
        return None, None
    code, _, text = main.partition(" ")
    if not any(char.isdigit() for char in code):
        return None, main
    return code, text.strip() or None


def _digits(org_number: str) -> str:
    return "".join(char for char in org_number if char.isdigit())


def parse_proff(payload: object) -> ProffCompany:
    """The RegisterCompany keys regsync reads, validated.

    Raises:
        RegistryMalformed: the payload does not have the body's shape (no values in the message).
    """
    try:
        return ProffCompany.model_validate(payload)
    except ValidationError as exc:
        raise RegistryMalformed(describe_validation_error(exc)) from None


def map_proff(key: CompanyKey, payload: object) -> Company:
    """Map one Proff RegisterCompany body (parsed JSON) to a Company.

    Raises:
        RegistryMalformed: the payload does not have the body's shape or is for another organisation number.
    """
    listing = parse_proff(payload)
    if _digits(listing.organisation_number) != _digits(key.org_number):
        raise RegistryMalformed("registry answer is for a different organisation number")
    nace_code, nace_text = _nace(listing.nace_categories)
    return Company(
        org_number=key.org_number,
        country=key.country,
        name=listing.name,
        legal_form=listing.company_type,
        status=proff_status(listing),
        business_address=_address(listing.visitor_address, key.country),
        postal_address=_address(listing.postal_address, key.country),
        nace_code=nace_code,
        nace_text=nace_text,
        employees=listing.number_of_employees,
        revenue=listing.revenue,
        founded=listing.established_date,
        website=listing.home_page,
    )


def proff_result(key: CompanyKey, response: httpx.Response) -> LookupResult:
    """The LookupResult for one Proff answer (401/403/429/5xx never get here).

    404 is "unknown org number" (seen in clients); Proff documents no other status, so anything but 200 and
    404 is a per-record REGISTRY_ERROR rather than a guessed meaning.
    """
    if response.status_code == 404:
        return status_only(key, CompanyStatus.NOT_FOUND)
    if response.status_code != 200:
        return unexpected_status(key, response.status_code)
    try:
        payload = json.loads(response.content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return malformed(key, "registry answer is not JSON")
    try:
        return LookupResult(key, map_proff(key, payload))
    except RegistryMalformed as exc:
        return malformed(key, exc.message)


def proff_candidates(payload: Any, country: str) -> list[Candidate]:
    """The hits of one register search page. Its shape (``{numberOfHits, companies: [RegisterCompany-like
    summaries]}``) is an assumption: the spec names the endpoint, not the body."""
    hits = payload["companies"] if isinstance(payload, dict) else None
    if not isinstance(hits, list):
        raise RegistryMalformed("Proff's search answer has no companies list")
    candidates = []
    for listing in (parse_proff(hit) for hit in hits):
        address = listing.visitor_address or listing.postal_address or ProffAddress()
        name, form = listing.name or "", listing.company_type
        number = _digits(listing.organisation_number)
        candidates.append(Candidate(country, number, name, form, address.zip_code, address.post_place))
    return candidates


class ProffProvider:
    """Proff's register API for NO, SE, DK and FI; one GET per unique key, ``concurrency`` at a time."""

    def __init__(self, base_url: str, token: str, http: RegistryHttp, *, concurrency: int) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Token {token}",
            "api-version": PROFF_API_VERSION,
            "Accept": "application/json",
        }
        self._http = http
        self._concurrency = concurrency

    @property
    def calls(self) -> int:
        return self._http.calls

    @calls.setter
    def calls(self, value: int) -> None:
        self._http.calls = value

    def lookup(self, key: CompanyKey) -> LookupResult:
        """Look up one company; see RegistryProvider for what raises and what is a result."""
        checked = checked_org_number(key, PROFF_COUNTRIES)
        if isinstance(checked, LookupResult):
            return checked
        # Digits only in the path, also for FI's "1234567-8" (PROTOCOLS.md 1.2: an assumption).
        url = f"{self._base_url}/api/companies/register/{key.country}/{_digits(checked)}"
        response = self._http.get(url, headers=self._headers)
        return replace(proff_result(CompanyKey(key.country, checked), response), key=key)

    def lookup_many(self, keys: Sequence[CompanyKey]) -> dict[CompanyKey, LookupResult]:
        """One result per unique key, looked up concurrently over one shared connection pool."""
        unique = unique_keys(keys)
        results = run_concurrently(self.lookup, unique, self._concurrency)
        return dict(zip(unique, results, strict=True))

    def close(self) -> None:
        self._http.client.close()

    def search_by_name(self, name: str, country: str) -> list[Candidate]:
        """Companies named like ``name`` in ``country`` (register search, first page; PROTOCOLS.md 1.2)."""
        if country.upper() not in PROFF_COUNTRIES:
            return []
        url = f"{self._base_url}/api/companies/register/{country.upper()}"
        params = {"query": name, "pageNumber": "1", "pageSize": str(MAX_CANDIDATES)}
        response = self._http.get(url, params=params, headers=self._headers)
        return search_answer(response, lambda payload: proff_candidates(payload, country.upper()))
