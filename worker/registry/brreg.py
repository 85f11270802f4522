"""The Brønnøysund provider (Norway's open Enhetsregisteret, base ``https://data.brreg.no/enhetsregisteret/api``).

Follows ../shared/PROTOCOLS.md section 2. Several numbers are looked up with one batch search,
``GET {base}/enheter?organisasjonsnummer=a,b,c&size=N`` (up to 100 a request); a number the answer leaves out
is unknown to the register (not_found) and is never asked again, so each number costs one request at most.
A single number is asked with ``GET {base}/enheter/{nr}``: 200 full, 200 reduced with ``slettedato``
(deleted), 404 (never existed: not_found), 410 (removed from open data: deleted). Only Norwegian numbers.
A batch cannot tell a removed unit from one that never existed (both are left out): both read not_found.
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
from worker.registry.search import MAX_CANDIDATES, Candidate, search_answer

BRREG_COUNTRIES: frozenset[str] = frozenset({"NO"})
MAX_BATCH = 100


def _blank_to_none(value: Any) -> Any:
    # brreg sends "" for empty dates and address lines (PROTOCOLS.md 2.2).
    return None if isinstance(value, str) and not value.strip() else value


Text = Annotated[str | None, BeforeValidator(_blank_to_none)]
Date = Annotated[dt.date | None, BeforeValidator(_blank_to_none)]


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
    stiftelsesdato: Date = None
    hjemmeside: Text = None
    konkurs: bool | None = None
    under_avvikling: bool | None = None
    under_tvangsavvikling_eller_tvangsopplosning: bool | None = None
    slettedato: Date = None


class _Embedded(_BrregModel):
    enheter: list[Any] = Field(default_factory=list)


class _PageInfo(_BrregModel):
    total_elements: int | None = None


class BrregSearchPage(BaseModel):
    """One page of ``GET /enheter``; without any hit brreg leaves ``_embedded`` out altogether."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    embedded: _Embedded | None = Field(default=None, alias="_embedded")
    page: _PageInfo | None = None

    @property
    def units(self) -> list[Any]:
        return self.embedded.enheter if self.embedded else []

    @property
    def cut_short(self) -> bool:
        """The register has more hits than this page holds (a later page was never asked for)."""
        total = self.page.total_elements if self.page else None
        return total is not None and total > len(self.units)


def brreg_status(unit: BrregUnit) -> CompanyStatus:
    """deleted > bankrupt > liquidation > active; a full unit without its status flags is UNKNOWN."""
    if unit.slettedato is not None:
        return CompanyStatus.DELETED
    flags = (unit.konkurs, unit.under_avvikling, unit.under_tvangsavvikling_eller_tvangsopplosning)
    if unit.konkurs:
        return CompanyStatus.BANKRUPT
    if unit.under_avvikling or unit.under_tvangsavvikling_eller_tvangsopplosning:
        return CompanyStatus.LIQUIDATION
    return CompanyStatus.UNKNOWN if None in flags else CompanyStatus.ACTIVE


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
        status=brreg_status(unit),
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
    """A result for every number of one batch answer: the units it holds, not_found for the ones it leaves out.

    brreg drops unknown numbers silently (PROTOCOLS.md 2.3). If the answer says it holds only part of the hits,
    the numbers it leaves out are REGISTRY_MALFORMED rather than not_found: absence then proves nothing.
    """
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
    results = _units_in(page, keys)
    for number, key in keys.items():
        if number not in results:
            results[number] = _absent(key, page.cut_short)
    return results


def _units_in(page: BrregSearchPage, keys: dict[str, CompanyKey]) -> dict[str, LookupResult]:
    results: dict[str, LookupResult] = {}
    for entry in page.units:
        number = entry.get("organisasjonsnummer") if isinstance(entry, dict) else None
        if isinstance(number, str) and number in keys:
            results[number] = _map_result(keys[number], entry)
    return results


def _absent(key: CompanyKey, cut_short: bool) -> LookupResult:
    if cut_short:
        return malformed(key, "registry batch answer holds only part of its hits")
    return status_only(key, CompanyStatus.NOT_FOUND)


def brreg_candidates(payload: Any) -> list[Candidate]:
    """The live units of one ``/enheter?navn=`` page (deleted ones, with ``slettedato``, are no candidates)."""
    units = [BrregUnit.model_validate(raw) for raw in BrregSearchPage.model_validate(payload).units]
    return [
        Candidate(
            "NO",
            unit.organisasjonsnummer,
            unit.navn or "",
            unit.organisasjonsform.kode if unit.organisasjonsform else None,
            (unit.forretningsadresse or unit.postadresse or BrregAddress()).postnummer,
            (unit.forretningsadresse or unit.postadresse or BrregAddress()).poststed,
        )
        for unit in units
        if unit.slettedato is None and unit.navn
    ]


class BrregProvider:
    """Enhetsregisteret: batch searches for several numbers, a single GET for one; each number asked once."""

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

    def search_by_name(self, name: str, country: str) -> list[Candidate]:
        """Norwegian units named like ``name`` (``GET /enheter?navn=``); none outside Norway."""
        if country.upper() not in BRREG_COUNTRIES:
            return []
        params = {"navn": name, "size": str(MAX_CANDIDATES)}
        return search_answer(self._http.get(f"{self._base_url}/enheter", params=params), brreg_candidates)

    def _lookup_numbers(self, numbers: list[str]) -> dict[str, LookupResult]:
        if len(numbers) == 1:
            # One number: a single GET answers found, deleted, removed and unknown in one request.
            return {numbers[0]: self._single(numbers[0])}
        size = self._batch_size
        batches = [numbers[start : start + size] for start in range(0, len(numbers), size)]
        found: dict[str, LookupResult] = {}
        for batch_results in run_concurrently(self._batch, batches, self._concurrency):
            found.update(batch_results)
        return found

    def _batch(self, numbers: list[str]) -> dict[str, LookupResult]:
        params = {"organisasjonsnummer": ",".join(numbers), "size": str(len(numbers))}
        return brreg_batch_results(numbers, self._http.get(f"{self._base_url}/enheter", params=params))

    def _single(self, number: str) -> LookupResult:
        key = CompanyKey("NO", number)
        return brreg_single_result(key, self._http.get(f"{self._base_url}/enheter/{number}"))
