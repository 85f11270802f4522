"""Renders a canonical Company as Brønnøysund's JSON, shaped as ../shared/PROTOCOLS.md section 2 shows it.

The shapes come from the document, not from our parser: a full ``enhet`` (2.2), the reduced body of a deleted
unit (2.4) and the HAL search page (2.1, 2.3). brreg has no revenue, no last-updated date and no "dissolved" or
"inactive": such companies render as deleted (reduced body with ``slettedato``). Proff lives in proff_json.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from typing import Any

from worker.company import Address, Company, CompanyStatus
from worker.sandbox.dataset_words import LEGAL_FORMS

COUNTRY_NAMES = {"NO": "Norge", "SE": "Sverige", "DK": "Danmark", "FI": "Finland"}
_GONE = frozenset({CompanyStatus.DELETED, CompanyStatus.DISSOLVED, CompanyStatus.INACTIVE})
_DEFAULT_GONE_DATE = dt.date(2024, 1, 31)


def legal_form_text(country: str, code: str | None) -> str | None:
    return LEGAL_FORMS.get(country, {}).get(code or "")


def iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def variant(company: Company, salt: str, choices: int) -> int:
    """A stable pseudo-random choice in ``range(choices)`` per company, so renderings vary but repeat."""
    digest = hashlib.sha1(f"{salt}:{company.country}{company.org_number}".encode(), usedforsecurity=False)
    return int.from_bytes(digest.digest()[:4], "big") % choices


def drop_none(data: dict[str, Any]) -> dict[str, Any]:
    # The registries leave out what a unit does not have rather than sending null (confirmed for both).
    return {key: value for key, value in data.items() if value is not None}


def _brreg_address(address: Address | None) -> dict[str, Any] | None:
    if address is None:
        return None
    return {
        "land": COUNTRY_NAMES.get(address.country or "", address.country),
        "landkode": address.country,
        "postnummer": address.postal_code,
        "poststed": address.city,
        "adresse": [address.street] if address.street else [],
        "kommune": (address.city or "").upper() or None,
    }


def _brreg_form(company: Company) -> dict[str, Any] | None:
    code = company.legal_form
    return {"kode": code, "beskrivelse": legal_form_text("NO", code)} if code else None


def _brreg_status_flags(status: CompanyStatus) -> dict[str, Any]:
    if status is CompanyStatus.UNKNOWN:
        # Not a brreg fact: a full unit always carries these flags. Leaving them out imitates a changed shape,
        # so a test can see regsync read "unknown" instead of "active".
        return {}
    return {
        "konkurs": status is CompanyStatus.BANKRUPT,
        "underAvvikling": status is CompanyStatus.LIQUIDATION,
        "underTvangsavviklingEllerTvangsopplosning": False,
    }


def render_brreg_deleted(company: Company, base_url: str) -> dict[str, Any]:
    """The reduced 200 body of a deleted unit (PROTOCOLS.md 2.4): number, name, form, ``slettedato``, links."""
    return drop_none(
        {
            "organisasjonsnummer": company.org_number,
            "navn": company.name,
            "organisasjonsform": _brreg_form(company),
            "slettedato": iso(company.last_updated or _DEFAULT_GONE_DATE),
            "_links": {"self": {"href": f"{base_url}/enheter/{company.org_number}"}},
        }
    )


def render_brreg(company: Company, base_url: str) -> dict[str, Any]:
    """A brreg ``enhet`` for ``company`` (PROTOCOLS.md 2.2); gone companies get the reduced deleted body."""
    if company.status in _GONE:
        return render_brreg_deleted(company, base_url)
    nace = {"kode": company.nace_code, "beskrivelse": company.nace_text} if company.nace_code else None
    form = company.legal_form
    return drop_none(
        {
            "organisasjonsnummer": company.org_number,
            "navn": company.name,
            "organisasjonsform": _brreg_form(company),
            "hjemmeside": company.website,
            "postadresse": _brreg_address(company.postal_address),
            "forretningsadresse": _brreg_address(company.business_address),
            "naeringskode1": nace,
            "antallAnsatte": company.employees,
            "harRegistrertAntallAnsatte": company.employees is not None,
            "registreringsdatoEnhetsregisteret": iso(company.founded),
            "stiftelsesdato": iso(company.founded),
            "registrertIMvaregisteret": company.status is CompanyStatus.ACTIVE,
            "registrertIForetaksregisteret": form in {"AS", "ASA", "ANS", "DA", "NUF", "SA"},
            **_brreg_status_flags(company.status),
            "sisteInnsendteAarsregnskap": "2025",
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


def brreg_view(company: Company) -> Company:
    """What brreg can say about ``company`` as rendered here: no revenue or last-updated date; a gone company
    is deleted and keeps only its name and legal form (the reduced body).

    A run's expected outcome is computed from this view (worker/sandbox/stack.py), not from the dataset.
    """
    if company.status in _GONE:
        return Company(
            org_number=company.org_number,
            country=company.country,
            name=company.name,
            legal_form=company.legal_form,
            status=CompanyStatus.DELETED,
        )
    return company.model_copy(update={"revenue": None, "last_updated": None})
