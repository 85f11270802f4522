"""The canonical company record every registry provider maps to, and the result of one lookup."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class CompanyStatus(StrEnum):
    ACTIVE = "active"
    DISSOLVED = "dissolved"
    BANKRUPT = "bankrupt"
    LIQUIDATION = "liquidation"
    DELETED = "deleted"
    NOT_FOUND = "not_found"
    INACTIVE = "inactive"
    UNKNOWN = "unknown"


class Address(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    street: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country: str | None = None


class Company(BaseModel):
    """A company as regsync understands it, whichever registry it came from.

    ``None`` means "the registry did not say": it is never written over a CRM value.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    org_number: str
    country: str
    name: str | None = None
    legal_form: str | None = None
    status: CompanyStatus = CompanyStatus.ACTIVE
    business_address: Address | None = None
    postal_address: Address | None = None
    nace_code: str | None = None
    nace_text: str | None = None
    employees: int | None = None
    revenue: int | None = None
    founded: dt.date | None = None
    website: str | None = None
    last_updated: dt.date | None = None


#: Address parts by canonical suffix: canonical ``postal_city`` reads ``Address.city`` of the postal address.
_ADDRESS_PARTS = {"street": "street", "postal_code": "postal_code", "city": "city", "country": "country"}

#: The older address fields: one address, the business (visitor) address, else the postal one, as a whole.
_EITHER_ADDRESS = {
    "street": "street",
    "postal_code": "postal_code",
    "city": "city",
    "address_country": "country",
}

#: Canonical field names a mapping may use (``canonical_value`` reads each from a Company).
CANONICAL_FIELDS: tuple[str, ...] = (
    "name",
    "legal_form",
    "status",
    *_EITHER_ADDRESS,
    *(f"{which}_{part}" for which in ("business", "postal") for part in _ADDRESS_PARTS),
    "nace_code",
    "nace_text",
    "nace_full",
    "employees",
    "revenue",
    "founded",
    "website",
    "last_updated",
)


def canonical_value(company: Company, field: str) -> str | int | dt.date | None:
    """The value of one canonical field; ``None`` leaves the CRM field alone.

    Addresses: ``business_*`` and ``postal_*`` read that address only; the older ``street``, ``postal_code``,
    ``city`` and ``address_country`` read the business address, or the postal one when there is none.
    ``status`` is ``None`` when the registry's status is unknown: it is never written.
    ``nace_full`` is the code and the text joined by one space, as Proff sends it (``62.010
    Programmeringstjenester``); the code alone when the registry gives no text.
    """
    if field in _EITHER_ADDRESS:
        return _part(company.business_address or company.postal_address, _EITHER_ADDRESS[field])
    which, _, part = field.partition("_")
    if which in ("business", "postal") and part in _ADDRESS_PARTS:
        return _part(getattr(company, f"{which}_address"), _ADDRESS_PARTS[part])
    if field == "status":
        return None if company.status is CompanyStatus.UNKNOWN else company.status.value
    if field == "nace_full":
        return _nace_full(company)
    value: str | int | dt.date | None = getattr(company, field)
    return value


def _part(address: Address | None, part: str) -> str | None:
    value: str | None = getattr(address, part) if address else None
    return value


def _nace_full(company: Company) -> str | None:
    if company.nace_code is None:
        return None
    return f"{company.nace_code} {company.nace_text}" if company.nace_text else company.nace_code


@dataclass(frozen=True, slots=True)
class CompanyKey:
    """What leaves regsync for a lookup: the country and the organisation number, nothing else."""

    country: str
    org_number: str


@dataclass(frozen=True, slots=True)
class LookupResult:
    """One lookup's outcome: a company (possibly with status deleted/not_found) or a per-record error."""

    key: CompanyKey
    company: Company | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.company is not None
