"""Renders a canonical Company as a Proff RegisterCompany body, shaped as ../shared/PROTOCOLS.md section 1.3 shows it.

The shape follows the document, not our parser: ``status.statusFlag`` (ACTIVE / INACTIVE), strings for
``numberOfEmployees``/``revenue``/``profit``, ``registrationDate`` as dd.MM.yyyy and ``establishedDate`` as ISO,
``"<code> <text>"`` NACE strings, omitted keys for missing data, both spellings of the coordinate keys, and for a
sole proprietorship the person behind it (``personRoles``, ``contactPerson``), invented. Values vary per company
in a stable way (see ``variant``), so a run meets every documented form. Where PROTOCOLS.md tags a fact
*assumption*, the comment at the spot says so.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from worker.company import Address, Company, CompanyStatus
from worker.sandbox.dataset_words import PERSON_FIRST_NAMES, PERSON_LAST_NAMES, SOLE_PROPRIETOR_FORMS
from worker.sandbox.registry_json import drop_none, iso, legal_form_text, variant

# Assumption: only "Aktiv" was ever recorded; the other description texts are invented (regsync ignores them).
_DESCRIPTIONS = {
    CompanyStatus.ACTIVE: "Aktiv",
    CompanyStatus.DISSOLVED: "Oppløst",
    CompanyStatus.BANKRUPT: "Konkurs",
    CompanyStatus.LIQUIDATION: "Under avvikling",
    CompanyStatus.DELETED: "Slettet",
    CompanyStatus.INACTIVE: "Ikke aktiv",
}
#: What Proff's one INACTIVE flag stands for (1.4: bankruptcy and liquidation are not told apart).
_INACTIVE = frozenset(
    {CompanyStatus.DISSOLVED, CompanyStatus.BANKRUPT, CompanyStatus.LIQUIDATION, CompanyStatus.DELETED}
)
_BOX_WORDS = ("Postboks", "Box", "Boks", "PB")
MASK = "***"


def _ddmmyyyy(value: dt.date | None) -> str | None:
    return value.strftime("%d.%m.%Y") if value else None


def _status(company: Company) -> dict[str, str] | None:
    """Only ACTIVE and INACTIVE exist (1.4): bankrupt, dissolved, deleted ... are all INACTIVE."""
    if company.status is CompanyStatus.UNKNOWN:
        return None  # a listing without ``status``: regsync must read "unknown", never "active"
    flag = "INACTIVE" if company.status in _INACTIVE | {CompanyStatus.INACTIVE} else "ACTIVE"
    return {"statusFlag": flag, "description": _DESCRIPTIONS.get(company.status, "Ikke aktiv")}


def _address(address: Address | None) -> dict[str, Any] | None:
    if address is None:
        return None
    street = address.street or ""
    line = "boxAddressLine" if street.startswith(_BOX_WORDS) else "addressLine"
    return drop_none({line: address.street, "zipCode": address.postal_code, "postPlace": address.city})


def _employees(company: Company) -> dict[str, Any]:
    """A number when the count is known; when it is not, nothing, a range or free text (spec: all three)."""
    if company.employees is not None:
        return {"numberOfEmployees": str(company.employees)}
    # Assumption: the spellings of a range and of free text are invented; the spec only says they occur.
    choice = variant(company, "employees", 3)
    if choice == 1:
        return {"numberOfEmployees": "10-19", "empMin": 10, "empMax": 19}
    if choice == 2:
        return {"numberOfEmployees": "Ikke oppgitt"}
    return {}


def _figures(company: Company) -> dict[str, Any]:
    # Strings, unit unstated (NOK thousands?: an assumption); the ENK recording lacked them: omitted.
    if company.revenue is None:
        return {}
    return {"revenue": str(company.revenue), "profit": str(company.revenue // 7 - 40)}


def _location(company: Company) -> dict[str, Any]:
    address = company.business_address or company.postal_address
    x = round(5.0 + variant(company, "x", 2500) / 100, 4)
    y = round(58.0 + variant(company, "y", 1200) / 100, 4)
    # Both spellings are confirmed (recording: XCoordinate, spec: xCoordinate); render each for half the companies.
    spelled = (
        ("XCoordinate", "YCoordinate") if variant(company, "coords", 2) else ("xCoordinate", "yCoordinate")
    )
    point = {spelled[0]: x, spelled[1]: y, "coordinateSystem": "EPSG:4326"}
    city = address.city if address else None
    return {"location": drop_none({"county": city, "municipality": city, "coordinates": [point]})}


def sandbox_person(company: Company) -> dict[str, str]:
    """The invented person behind a sole proprietorship: name, birth date (ddMMyyyy, opaque) and person id."""
    first = PERSON_FIRST_NAMES[variant(company, "first", len(PERSON_FIRST_NAMES))]
    last = PERSON_LAST_NAMES[variant(company, "last", len(PERSON_LAST_NAMES))]
    born = dt.date(1950, 1, 1) + dt.timedelta(days=variant(company, "born", 18_000))
    return {
        "name": f"{first} {last}",
        "birthDate": born.strftime("%d%m%Y"),
        "personId": str(3_100_000 + variant(company, "pid", 899_999)),
    }


def _people(company: Company, masked: bool) -> dict[str, Any]:
    """``contactPerson`` and ``personRoles`` as the ENK recording had them; ``***`` where Proff masks them."""
    if company.legal_form not in SOLE_PROPRIETOR_FORMS:
        return {}
    person = sandbox_person(company)
    name = MASK if masked else person["name"]
    home = _address(company.postal_address) or {}
    role = {
        "name": name,
        "birthDate": MASK if masked else person["birthDate"],
        "personId": person["personId"],
        "title": "Innehaver",
        "titleCode": "INNH",
        "postalAddress": home,
        "details": {
            "href": f"https://api.proff.no/persons/business/{company.country}/{person['personId']}",
            "rel": "related",
        },
    }
    return {
        "contactPerson": {"name": name, "role": "Innehaver", "roleCode": "INNH"},
        "personRoles": [role],
    }


def _register_facts(company: Company) -> dict[str, Any]:
    founded = company.founded
    registered = founded + dt.timedelta(days=13) if founded else None
    nace = " ".join(part for part in (company.nace_code, company.nace_text) if part)
    return {
        "registrationDate": _ddmmyyyy(registered),
        "establishedDate": iso(founded),
        "foundationYear": str(founded.year) if founded else None,
        "naceCategories": [nace] if nace else None,
        "registeredForVat": company.status is CompanyStatus.ACTIVE,
        "registeredForNav": False,
        "registeredForPayrollTax": company.legal_form not in SOLE_PROPRIETOR_FORMS,
        "hasSecurity": False,
        "marketingProtection": False,
    }


def render_proff(company: Company, *, masked: bool = False) -> dict[str, Any]:
    """A RegisterCompany body for ``company``; ``masked`` replaces the names Proff may mask with ``***``."""
    number = "".join(char for char in company.org_number if char.isdigit())  # assumption for SE/DK/FI
    body: dict[str, Any] = {
        "companyType": company.legal_form,
        "companyTypeName": legal_form_text(company.country, company.legal_form),
        "name": MASK if masked else company.name,
        "organisationNumber": number,
        "companyId": number,
        "proffListingId": f"I{variant(company, 'listing', 36**9):X}",
        "previousNames": [],
        "status": _status(company),
        **_register_facts(company),
        **_employees(company),
        **_figures(company),
        "homePage": company.website,
        "postalAddress": _address(company.postal_address),
        "visitorAddress": _address(company.business_address),
        **_location(company),
        **_people(company, masked),
        "mortgages": {
            "overview": {"voluntary": {"count": 0, "sum": 0}, "compulsory": {"count": 0, "sum": 0}}
        },
        "link": {
            "href": f"https://api.proff.no/companies/register/{company.country}/{number}",
            "rel": "self",
        },
    }
    if company.website is None and variant(company, "null", 4) == 0:
        body["email"] = None  # explicit nulls: an assumption (omission is what was recorded)
    return {key: value for key, value in body.items() if value is not None or key == "email"}


def proff_view(company: Company) -> Company:
    """What Proff can say about ``company`` as rendered here: ACTIVE or INACTIVE, and no last-updated date.

    A run's expected outcome is computed from this view (worker/sandbox/stack.py), not from the dataset.
    """
    status = CompanyStatus.INACTIVE if company.status in _INACTIVE else company.status
    return company.model_copy(update={"status": status, "last_updated": None})
