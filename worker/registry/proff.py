"""The Proff provider: ``GET {base}/api/companies/register/{CC}/{orgnr}`` for NO, SE and DK.

Proff's register listing is JSON in camelCase. The fields regsync reads (everything else is ignored)::

    {
      "organisationNumber": "923609016",
      "name": "Nordlys Consulting AS",
      "companyType": "AS",                      # legal-form code -> legal_form
      "companyTypeName": "Aksjeselskap",
      "status": {"status": "Aktiv", "description": "...", "statusDate": "01.02.2020"},
      "establishedDate": "18.09.1972",          # dd.mm.yyyy (ISO dates are accepted too)
      "numberOfEmployees": "21",                # string or number
      "naceCategories": ["62.010 Programmeringstjenester"],   # "code text"; the first is the main one
      "revenue": "12345",                       # thousands of local currency, kept as Proff reports it
      "homePage": "www.nordlys.no",
      "visitorAddress": {"addressLine": "...", "boxAddressLine": null,
                         "zipCode": "0150", "postPlace": "Oslo"},
      "postalAddress": {... same shape ...},
      "lastUpdatedDate": "31.01.2024"
    }

Field names follow public integrations of Proff's API (``companyTypeName``, ``naceCategories``,
``numberOfEmployees``, ``visitorAddress``/``postalAddress`` with ``addressLine``/``zipCode``/``postPlace``);
the status object and its words (Norwegian, Swedish, Danish or English) are our best reading of it.
A missing ``status`` means active; a status word we do not know is a malformed answer, never a guess.
"""

from __future__ import annotations

import datetime as dt
import json
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

PROFF_COUNTRIES: frozenset[str] = frozenset({"NO", "SE", "DK"})

#: Status words Proff uses (casefolded), per language, and what they mean canonically.
PROFF_STATUS_WORDS: dict[str, CompanyStatus] = {
    "aktiv": CompanyStatus.ACTIVE,
    "active": CompanyStatus.ACTIVE,
    "normal": CompanyStatus.ACTIVE,
    "oppløst": CompanyStatus.DISSOLVED,
    "avregistrerad": CompanyStatus.DISSOLVED,
    "opløst": CompanyStatus.DISSOLVED,
    "dissolved": CompanyStatus.DISSOLVED,
    "konkurs": CompanyStatus.BANKRUPT,
    "under konkurs": CompanyStatus.BANKRUPT,
    "bankrupt": CompanyStatus.BANKRUPT,
    "under avvikling": CompanyStatus.LIQUIDATION,
    "under tvangsavvikling": CompanyStatus.LIQUIDATION,
    "likvidation": CompanyStatus.LIQUIDATION,
    "under likvidation": CompanyStatus.LIQUIDATION,
    "liquidation": CompanyStatus.LIQUIDATION,
    "slettet": CompanyStatus.DELETED,
    "avförd": CompanyStatus.DELETED,
    "ophørt": CompanyStatus.DELETED,
    "deleted": CompanyStatus.DELETED,
}


def _parse_date(value: Any) -> Any:
    """Proff writes dates as dd.mm.yyyy; ISO strings and date objects pass through to pydantic."""
    if isinstance(value, str) and len(value) == 10 and value[2] == "." and value[5] == ".":
        day, month, year = value.split(".")
        return dt.date(int(year), int(month), int(day))
    return value


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


ProffDate = Annotated[dt.date | None, BeforeValidator(_parse_date), BeforeValidator(_blank_to_none)]
Text = Annotated[str | None, BeforeValidator(_blank_to_none)]
Count = Annotated[int | None, BeforeValidator(_blank_to_none)]


class _ProffModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class ProffAddress(_ProffModel):
    address_line: Text = None
    box_address_line: Text = None
    zip_code: Text = None
    post_place: Text = None


class ProffStatus(_ProffModel):
    status: Text = None
    description: Text = None
    status_date: ProffDate = None


class ProffCompany(_ProffModel):
    organisation_number: str
    name: Text = None
    company_type: Text = None
    company_type_name: Text = None
    status: ProffStatus | None = None
    established_date: ProffDate = None
    number_of_employees: Count = None
    nace_categories: list[str] | None = None
    revenue: Count = None
    home_page: Text = None
    visitor_address: ProffAddress | None = None
    postal_address: ProffAddress | None = None
    last_updated_date: ProffDate = None


def _status(listing: ProffCompany) -> CompanyStatus:
    word = listing.status.status if listing.status else None
    if word is None:
        return CompanyStatus.ACTIVE
    status = PROFF_STATUS_WORDS.get(word.strip().casefold())
    if status is None:
        raise RegistryMalformed("registry answer has an unknown company status")
    return status


def _address(address: ProffAddress | None, country: str) -> Address | None:
    if address is None:
        return None
    street = address.address_line or address.box_address_line
    if not (street or address.zip_code or address.post_place):
        return None
    return Address(street=street, postal_code=address.zip_code, city=address.post_place, country=country)


def _nace(categories: list[str] | None) -> tuple[str | None, str | None]:
    """("62.010", "Programmeringstjenester") from Proff's "62.010 Programmeringstjenester"."""
    if not categories or not categories[0].strip():
        return None, None
    code, _, text = categories[0].strip().partition(" ")
    if not any(char.isdigit() for char in code):
        return None, categories[0].strip()
    return code, text.strip() or None


def map_proff(key: CompanyKey, payload: object) -> Company:
    """Map one Proff register listing (parsed JSON) to a Company.

    Raises:
        RegistryMalformed: the payload does not have the listing's shape, is for another organisation
            number, or carries a status word regsync does not know.
    """
    try:
        listing = ProffCompany.model_validate(payload)
    except ValidationError as exc:
        raise RegistryMalformed(describe_validation_error(exc)) from None
    if listing.organisation_number.replace(" ", "").replace("-", "") != key.org_number:
        raise RegistryMalformed("registry answer is for a different organisation number")
    nace_code, nace_text = _nace(listing.nace_categories)
    return Company(
        org_number=key.org_number,
        country=key.country,
        name=listing.name,
        legal_form=listing.company_type,
        status=_status(listing),
        business_address=_address(listing.visitor_address, key.country),
        postal_address=_address(listing.postal_address, key.country),
        nace_code=nace_code,
        nace_text=nace_text,
        employees=listing.number_of_employees,
        revenue=listing.revenue,
        founded=listing.established_date,
        website=listing.home_page,
        last_updated=listing.last_updated_date,
    )


def proff_result(key: CompanyKey, response: httpx.Response) -> LookupResult:
    """The LookupResult for one Proff answer (401/403/429/5xx never get here)."""
    if response.status_code == 404:
        return status_only(key, CompanyStatus.NOT_FOUND)
    if response.status_code == 410:
        return status_only(key, CompanyStatus.DELETED)
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


class ProffProvider:
    """Proff's register API for NO, SE and DK; one GET per unique key, ``concurrency`` at a time."""

    def __init__(self, base_url: str, token: str, http: RegistryHttp, *, concurrency: int) -> None:
        self._base_url = base_url.rstrip("/")
        self._auth = {"Authorization": f"Token {token}"}
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
        url = f"{self._base_url}/api/companies/register/{key.country}/{checked}"
        response = self._http.get(url, headers=self._auth)
        return replace(proff_result(CompanyKey(key.country, checked), response), key=key)

    def lookup_many(self, keys: Sequence[CompanyKey]) -> dict[CompanyKey, LookupResult]:
        """One result per unique key, looked up concurrently over one shared connection pool."""
        unique = unique_keys(keys)
        results = run_concurrently(self.lookup, unique, self._concurrency)
        return dict(zip(unique, results, strict=True))

    def close(self) -> None:
        self._http.client.close()
