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


#: Canonical field names a mapping may use, and how to read each from a Company.
CANONICAL_FIELDS: tuple[str, ...] = (
    "name",
    "legal_form",
    "status",
    "street",
    "postal_code",
    "city",
    "address_country",
    "nace_code",
    "nace_text",
    "employees",
    "revenue",
    "founded",
    "website",
    "last_updated",
)


def canonical_value(company: Company, field: str) -> str | int | dt.date | None:
    """The value of one canonical field (addresses flattened from the business address)."""
    address = company.business_address or company.postal_address
    address_fields = {
        "street": "street",
        "postal_code": "postal_code",
        "city": "city",
        "address_country": "country",
    }
    if field in address_fields:
        return getattr(address, address_fields[field]) if address else None
    if field == "status":
        return company.status.value
    value: str | int | dt.date | None = getattr(company, field)
    return value


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
