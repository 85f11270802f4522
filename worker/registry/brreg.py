"""The Brønnøysund provider (Norway's open Enhetsregisteret, base like ``https://data.brreg.no/enhetsregisteret/api``).

Lookups use the batch search ``GET {base}/enheter?organisasjonsnummer=a,b,c&size=N`` (up to 100
numbers a request); numbers missing from ``_embedded.enheter`` are then asked one by one with
``GET {base}/enheter/{nr}`` to tell a removed unit (410 -> deleted) from one that never existed
(404 -> not_found). A deleted unit answers 200 with ``slettedato``. Only Norwegian numbers are covered.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
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

BRREG_COUNTRIES: frozenset[str] = frozenset({"NO"})
MAX_BATCH = 100


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


Text = Annotated[str | None, BeforeValidator(_blank_to_none)]


class _BrregModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class BrregCode(_BrregModel):
    kode: Text = None
    beskrivelse: Text = None


class BrregAddress(_BrregModel):
    adresse: list[str | None] | None = None
    postnummer: Text = None
    poststed: Text = None
    land: Text = None
    landkode: Text = None


class BrregUnit(_BrregModel):
    organisasjonsnummer: str
    navn: Text = None
    organisasjonsform: BrregCode | None = None
    forretningsadresse: BrregAddress | None = None
    postadresse: BrregAddress | None = None
    naeringskode1: BrregCode | None = None
    antall_ansatte: int | None = None
    stiftelsesdato: dt.date | None = None
    hjemmeside: Text = None
    konkurs: bool | None = None
    under_avvikling: bool | None = None
    under_tvangsavvikling_eller_tvangsopplosning: bool | None = None
    slettedato: dt.date | None = None


class _Embedded(_BrregModel):
    enheter: list[Any] = Field(default_factory=list)


class BrregSearchPage(BaseModel):
    """One page of ``GET /enheter``; without any hit brreg leaves ``_embedded`` out altogether."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    embedded: _Embedded | None = Field(default=None, alias="_embedded")


def _status(unit: BrregUnit) -> CompanyStatus:
    if unit.slettedato is not None:
        return CompanyStatus.DELETED
    if unit.konkurs:
        return CompanyStatus.BANKRUPT
    if unit.under_avvikling or unit.under_tvangsavvikling_eller_tvangsopplosning:
        return CompanyStatus.LIQUIDATION
    return CompanyStatus.ACTIVE


def _address(address: BrregAddress | None) -> Address | None:
    if address is None:
        return None
    lines = [line.strip() for line in address.adresse or [] if line and line.strip()]
    street = ", ".join(lines) or None
    if not (street or address.postnummer or address.poststed):
        return None
    return Address(
        street=street, postal_code=address.postnummer, city=address.poststed, country=address.landkode
    )


def map_brreg(key: CompanyKey, payload: object) -> Company:
    """Map one brreg ``enhet`` (parsed JSON) to a Company.

    Raises:
        RegistryMalformed: the payload does not have an enhet's shape or is for another number.
    """
    try:
        unit = BrregUnit.model_validate(payload)
    except ValidationError as exc:
        raise RegistryMalformed(describe_validation_error(exc)) from None
    if unit.organisasjonsnummer != key.org_number:
        raise RegistryMalformed("registry answer is for a different organisation number")
    nace = unit.naeringskode1
    return Company(
        org_number=key.org_number,
        country=key.country,
        name=unit.navn,
        legal_form=unit.organisasjonsform.kode if unit.organisasjonsform else None,
        status=_status(unit),
        business_address=_address(unit.forretningsadresse),
        postal_address=_address(unit.postadresse),
        nace_code=nace.kode if nace else None,
        nace_text=nace.beskrivelse if nace else None,
        employees=unit.antall_ansatte,
        founded=unit.stiftelsesdato,
        website=unit.hjemmeside,
    )


def _map_result(key: CompanyKey, payload: object) -> LookupResult:
    try:
        return LookupResult(key, map_brreg(key, payload))
    except RegistryMalformed as exc:
        return malformed(key, exc.message)


def _json(response: httpx.Response) -> object:
    try:
        return json.loads(response.content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RegistryMalformed("registry answer is not JSON") from None


def brreg_single_result(key: CompanyKey, response: httpx.Response) -> LookupResult:
    """The LookupResult for one ``GET /enheter/{nr}`` answer (401/403/429/5xx never get here)."""
    if response.status_code == 404:
        return status_only(key, CompanyStatus.NOT_FOUND)
    if response.status_code == 410:
        return status_only(key, CompanyStatus.DELETED)
    if response.status_code != 200:
        return unexpected_status(key, response.status_code)
    try:
        return _map_result(key, _json(response))
    except RegistryMalformed as exc:
        return malformed(key, exc.message)


def brreg_batch_results(numbers: Sequence[str], response: httpx.Response) -> dict[str, LookupResult]:
    """Results for the numbers a batch answer contains; numbers it leaves out are not in the dict."""
    keys = {number: CompanyKey("NO", number) for number in numbers}
    if response.status_code != 200:
        return {number: unexpected_status(key, response.status_code) for number, key in keys.items()}
    try:
        page = BrregSearchPage.model_validate(_json(response))
    except RegistryMalformed as exc:
        return {number: malformed(key, exc.message) for number, key in keys.items()}
    except ValidationError as exc:
        reason = describe_validation_error(exc)
        return {number: malformed(key, reason) for number, key in keys.items()}
    results: dict[str, LookupResult] = {}
    for entry in page.embedded.enheter if page.embedded else []:
        number = entry.get("organisasjonsnummer") if isinstance(entry, dict) else None
        if isinstance(number, str) and number in keys:
            results[number] = _map_result(keys[number], entry)
    return results


class BrregProvider:
    """Enhetsregisteret: batch search first, single GETs only for numbers the batch did not return."""

    def __init__(
        self, base_url: str, http: RegistryHttp, *, concurrency: int, batch_size: int = MAX_BATCH
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._http = http
        self._concurrency = concurrency
        self._batch_size = max(1, min(batch_size, MAX_BATCH))

    @property
    def calls(self) -> int:
        return self._http.calls

    @calls.setter
    def calls(self, value: int) -> None:
        self._http.calls = value

    def lookup(self, key: CompanyKey) -> LookupResult:
        """Look up one company with ``GET /enheter/{nr}``."""
        checked = checked_org_number(key, BRREG_COUNTRIES)
        if isinstance(checked, LookupResult):
            return checked
        return replace(self._single(checked), key=key)

    def lookup_many(self, keys: Sequence[CompanyKey]) -> dict[CompanyKey, LookupResult]:
        """One result per unique key, in as few requests as the batch search allows."""
        results: dict[CompanyKey, LookupResult] = {}
        keys_by_number: dict[str, list[CompanyKey]] = {}
        for key in unique_keys(keys):
            checked = checked_org_number(key, BRREG_COUNTRIES)
            if isinstance(checked, LookupResult):
                results[key] = checked
            else:
                keys_by_number.setdefault(checked, []).append(key)
        for number, result in self._lookup_numbers(list(keys_by_number)).items():
            for key in keys_by_number[number]:
                results[key] = replace(result, key=key)
        return {key: results[key] for key in unique_keys(keys)}

    def close(self) -> None:
        self._http.client.close()

    def _lookup_numbers(self, numbers: list[str]) -> dict[str, LookupResult]:
        if len(numbers) == 1:
            # One number: a single GET answers found, deleted, removed and unknown in one request.
            return {numbers[0]: self._single(numbers[0])}
        size = self._batch_size
        batches = [numbers[start : start + size] for start in range(0, len(numbers), size)]
        found: dict[str, LookupResult] = {}
        for batch_results in run_concurrently(self._batch, batches, self._concurrency):
            found.update(batch_results)
        missing = [number for number in numbers if number not in found]
        found.update(zip(missing, run_concurrently(self._single, missing, self._concurrency), strict=True))
        return found

    def _batch(self, numbers: list[str]) -> dict[str, LookupResult]:
        params = {"organisasjonsnummer": ",".join(numbers), "size": str(len(numbers))}
        return brreg_batch_results(numbers, self._http.get(f"{self._base_url}/enheter", params=params))

    def _single(self, number: str) -> LookupResult:
        key = CompanyKey("NO", number)
        return brreg_single_result(key, self._http.get(f"{self._base_url}/enheter/{number}"))
