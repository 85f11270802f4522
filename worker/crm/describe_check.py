"""Check a connection's field mapping against the CRM object's describe before anything is written."""

from __future__ import annotations

from worker.connections.spec import ConnectionSpec
from worker.crm.port import FieldInfo
from worker.errors import MappingError

_TEXT = frozenset({"string", "textarea", "picklist", "url", "phone"})
_NUMBER = frozenset({"int", "double", "currency", "string"})
_DATE = frozenset({"date", "datetime", "string"})

#: Salesforce field types each canonical field may be written to.
COMPATIBLE_TYPES: dict[str, frozenset[str]] = {
    "name": _TEXT,
    "legal_form": _TEXT,
    "street": _TEXT,
    "postal_code": _TEXT,
    "city": _TEXT,
    "address_country": _TEXT,
    "business_street": _TEXT,
    "business_postal_code": _TEXT,
    "business_city": _TEXT,
    "business_country": _TEXT,
    "postal_street": _TEXT,
    "postal_postal_code": _TEXT,
    "postal_city": _TEXT,
    "postal_country": _TEXT,
    "nace_code": _TEXT,
    "nace_text": _TEXT,
    "nace_full": _TEXT,
    "employees": _NUMBER,
    "revenue": _NUMBER,
    "founded": _DATE,
    "last_updated": _DATE,
    "website": frozenset({"url", "string"}),
    "status": frozenset({"picklist", "string"}),
}


def check_mapping(spec: ConnectionSpec, fields: dict[str, FieldInfo]) -> None:
    """Raise MappingError listing every way the mapping does not fit the object's fields.

    Args:
        spec: The connection whose key, country and mapped fields are checked.
        fields: The object's describe, by field API name (Salesforce names are case-insensitive).

    Raises:
        MappingError: A field is missing, read-only, of an unsuitable type, or is the org-number key.
    """
    problems = _problems(spec, {name.lower(): info for name, info in fields.items()})
    if problems:
        raise MappingError(f"mapping does not fit {spec.salesforce.object}: " + "; ".join(problems))


def _problems(spec: ConnectionSpec, by_name: dict[str, FieldInfo]) -> list[str]:
    sf = spec.salesforce
    problems = []
    roles = (
        ("org_number_field", sf.org_number_field),
        ("country_field", sf.country_field),
        ("opt_out_field", sf.opt_out_field),
    )
    for role, name in roles:
        if name is not None and name.lower() not in by_name:
            problems.append(f"{role} {name!r} does not exist")
    opt_out = by_name.get((sf.opt_out_field or "").lower())
    if opt_out is not None and opt_out.type != "boolean":
        problems.append(
            f"opt_out_field {opt_out.name!r} has type {opt_out.type!r} (expected a checkbox: boolean)"
        )
    for canonical, mapping in spec.mapping.items():
        problems += _mapped_field_problems(canonical, mapping.field, by_name, sf.org_number_field)
    return problems


def _mapped_field_problems(canonical: str, name: str, by_name: dict[str, FieldInfo], key: str) -> list[str]:
    info = by_name.get(name.lower())
    if info is None:
        return [f"{canonical} → {name!r} does not exist"]
    problems = []
    if name.lower() == key.lower():
        problems.append(f"{canonical} → {name!r} would overwrite the org-number key")
    if not info.updateable:
        problems.append(f"{canonical} → {name!r} is not updateable")
    allowed = COMPATIBLE_TYPES[canonical]
    if info.type not in allowed:
        expected = ", ".join(sorted(allowed))
        problems.append(f"{canonical} → {name!r} has type {info.type!r} (expected one of: {expected})")
    return problems


def check_against_org(spec: ConnectionSpec, secret: str) -> None:
    """Describe the connection's object in its org and check the mapping against it (for `connection apply`)."""
    from worker.crm.salesforce import SalesforceClient

    with SalesforceClient(spec, secret) as client:
        check_mapping(spec, client.describe())
