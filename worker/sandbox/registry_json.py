"""Renders a canonical Company as Proff's and Brønnøysund's JSON: the inverse of the providers' mappers.

Round trips are exact except where a registry cannot say something: brreg has no revenue, no
last-updated date and no "dissolved" (rendered as deleted); Proff addresses carry the company's country.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from typing import Any

from worker.company import Address, Company, CompanyStatus

#: Legal-form codes per country with the registry's own description.
LEGAL_FORMS: dict[str, dict[str, str]] = {
    "NO": {
        "AS": "Aksjeselskap",
        "ASA": "Allmennaksjeselskap",
        "ENK": "Enkeltpersonforetak",
        "ANS": "Ansvarlig selskap",
        "DA": "Selskap med delt ansvar",
        "NUF": "Norskregistrert utenlandsk foretak",
        "SA": "Samvirkeforetak",
        "STI": "Stiftelse",
        "FLI": "Forening/lag/innretning",
    },
    "SE": {
        "AB": "Aktiebolag",
        "HB": "Handelsbolag",
        "KB": "Kommanditbolag",
        "EF": "Enskild näringsidkare",
        "EK": "Ekonomisk förening",
    },
    "DK": {
        "ApS": "Anpartsselskab",
        "A/S": "Aktieselskab",
        "I/S": "Interessentskab",
        "IVS": "Iværksætterselskab",
        "ENK": "Enkeltmandsvirksomhed",
    },
}

#: The status word Proff shows per country; the provider's PROFF_STATUS_WORDS reads them back.
PROFF_STATUS_TEXT: dict[str, dict[CompanyStatus, str]] = {
    "NO": {
        CompanyStatus.ACTIVE: "Aktiv",
        CompanyStatus.DISSOLVED: "Oppløst",
        CompanyStatus.BANKRUPT: "Konkurs",
        CompanyStatus.LIQUIDATION: "Under avvikling",
        CompanyStatus.DELETED: "Slettet",
    },
    "SE": {
        CompanyStatus.ACTIVE: "Aktiv",
        CompanyStatus.DISSOLVED: "Avregistrerad",
        CompanyStatus.BANKRUPT: "Konkurs",
        CompanyStatus.LIQUIDATION: "Likvidation",
        CompanyStatus.DELETED: "Avförd",
    },
    "DK": {
        CompanyStatus.ACTIVE: "Aktiv",
        CompanyStatus.DISSOLVED: "Opløst",
        CompanyStatus.BANKRUPT: "Under konkurs",
        CompanyStatus.LIQUIDATION: "Under likvidation",
        CompanyStatus.DELETED: "Ophørt",
    },
}

_COUNTRY_NAMES = {"NO": "Norge", "SE": "Sverige", "DK": "Danmark", "FI": "Finland"}
_GONE = frozenset({CompanyStatus.DELETED, CompanyStatus.DISSOLVED})
_DEFAULT_GONE_DATE = dt.date(2024, 1, 31)


def _legal_form_text(country: str, code: str | None) -> str | None:
    return LEGAL_FORMS.get(country, {}).get(code or "")


def _ddmmyyyy(value: dt.date | None) -> str | None:
    return value.strftime("%d.%m.%Y") if value else None


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def _proff_address(address: Address | None) -> dict[str, Any] | None:
    if address is None:
        return None
    return {
        "addressLine": address.street,
        "boxAddressLine": None,
        "zipCode": address.postal_code,
        "postPlace": address.city,
    }


def _proff_company_id(company: Company) -> str:
    digest = hashlib.sha1(f"{company.country}{company.org_number}".encode(), usedforsecurity=False)
    return "I" + digest.hexdigest()[:10].upper()


def render_proff(company: Company) -> dict[str, Any]:
    """A Proff register listing for ``company`` (with the extra fields real listings carry)."""
    status_word = PROFF_STATUS_TEXT.get(company.country, PROFF_STATUS_TEXT["NO"])[company.status]
    nace = " ".join(part for part in (company.nace_code, company.nace_text) if part)
    city = (company.business_address or company.postal_address or Address()).city
    return {
        "companyId": _proff_company_id(company),
        "organisationNumber": company.org_number,
        "name": company.name,
        "companyType": company.legal_form,
        "companyTypeName": _legal_form_text(company.country, company.legal_form),
        "status": {"status": status_word, "description": None, "statusDate": _ddmmyyyy(company.last_updated)},
        "registeredForVat": company.status is CompanyStatus.ACTIVE,
        "establishedDate": _ddmmyyyy(company.founded),
        "numberOfEmployees": None if company.employees is None else str(company.employees),
        "naceCategories": [nace] if nace else [],
        "revenue": None if company.revenue is None else str(company.revenue),
        "profit": None,
        "currency": {"NO": "NOK", "SE": "SEK", "DK": "DKK"}.get(company.country),
        "homePage": company.website,
        "email": None,
        "phoneNumbers": {"telephoneNumber": None, "mobilePhone": None, "faxNumber": None},
        "visitorAddress": _proff_address(company.business_address),
        "postalAddress": _proff_address(company.postal_address),
        "location": {"countryPart": None, "county": None, "municipality": city, "coordinates": None},
        "lastUpdatedDate": _ddmmyyyy(company.last_updated),
        "marketingProtection": False,
    }


def _brreg_address(address: Address | None) -> dict[str, Any] | None:
    if address is None:
        return None
    return {
        "land": _COUNTRY_NAMES.get(address.country or "", address.country),
        "landkode": address.country,
        "postnummer": address.postal_code,
        "poststed": address.city,
        "adresse": [address.street] if address.street else [],
        "kommune": (address.city or "").upper() or None,
    }


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    # brreg leaves out what a unit does not have rather than sending null.
    return {key: value for key, value in data.items() if value is not None}


def render_brreg(company: Company, base_url: str) -> dict[str, Any]:
    """A brreg ``enhet`` for ``company``; deleted and dissolved units carry ``slettedato``."""
    form = company.legal_form
    nace = {"kode": company.nace_code, "beskrivelse": company.nace_text} if company.nace_code else None
    gone = company.status in _GONE
    return _drop_none(
        {
            "organisasjonsnummer": company.org_number,
            "navn": company.name,
            "organisasjonsform": {"kode": form, "beskrivelse": _legal_form_text("NO", form)}
            if form
            else None,
            "hjemmeside": company.website,
            "postadresse": _brreg_address(company.postal_address),
            "registreringsdatoEnhetsregisteret": _iso(company.founded),
            "registrertIMvaregisteret": company.status is CompanyStatus.ACTIVE,
            "naeringskode1": nace,
            "antallAnsatte": company.employees,
            "harRegistrertAntallAnsatte": company.employees is not None,
            "forretningsadresse": _brreg_address(company.business_address),
            "stiftelsesdato": _iso(company.founded),
            "registrertIForetaksregisteret": form in {"AS", "ASA", "ANS", "DA", "NUF", "SA"},
            "registrertIStiftelsesregisteret": form == "STI",
            "registrertIFrivillighetsregisteret": False,
            "konkurs": company.status is CompanyStatus.BANKRUPT,
            "underAvvikling": company.status is CompanyStatus.LIQUIDATION,
            "underTvangsavviklingEllerTvangsopplosning": False,
            "slettedato": _iso(company.last_updated or _DEFAULT_GONE_DATE) if gone else None,
            "maalform": "Bokmål",
            "_links": {"self": {"href": f"{base_url}/enheter/{company.org_number}"}},
        }
    )


def render_brreg_page(units: list[object], size: int, base_url: str) -> dict[str, Any]:
    """The first page of a ``GET /enheter`` search; ``_embedded`` is left out when nothing matched."""
    size = max(1, size)
    page: dict[str, Any] = {
        "_links": {"self": {"href": f"{base_url}/enheter"}},
        "page": {
            "size": size,
            "totalElements": len(units),
            "totalPages": math.ceil(len(units) / size),
            "number": 0,
        },
    }
    if units:
        page["_embedded"] = {"enheter": units[:size]}
    return page
