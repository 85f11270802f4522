"""Check a connection's field mapping against the CRM object's describe before anything is written.

Refused (MappingError): a field that is missing, read-only, of an unsuitable type, the org-number key, or a
restricted picklist / text field that none of the canonical field's values can fit. Reported (warnings): a
field that only some values fit; those records fail one by one with VALUE_DOES_NOT_FIT and are never sent.
"""

from __future__ import annotations

from worker.company import CompanyStatus
from worker.connections.spec import ConnectionSpec
from worker.crm.port import FieldInfo
from worker.crm.value_fit import TEXT_TYPES, restricted_values
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


#: Every value a canonical field can take, where the registry's answer is one of a known few. UNKNOWN is never
#: written (the field is left alone), so it need not fit.
KNOWN_VALUES: dict[str, frozenset[str]] = {
    "status": frozenset(status.value for status in CompanyStatus if status.value != "unknown"),
}
#: The longest value of a canonical field whose format is fixed (NACE "62.010", ISO country codes).
KNOWN_MAX_LENGTH: dict[str, int] = {"nace_code": 6, "address_country": 2}


def check_mapping(spec: ConnectionSpec, fields: dict[str, FieldInfo]) -> list[str]:
    """Raise MappingError listing every way the mapping does not fit the object's fields; return the warnings.

    Args:
        spec: The connection whose key, country and mapped fields are checked.
        fields: The object's describe, by field API name (Salesforce names are case-insensitive).

    Returns:
        One sentence per mapped field that some registry values will not fit (they fail per record).

    Raises:
        MappingError: A field is missing, read-only, of an unsuitable type, is the org-number key, or no value
            of its canonical field can fit it.
    """
    by_name = {name.lower(): info for name, info in fields.items()}
    problems = _problems(spec, by_name)
    fits = [
        fit for c, m in spec.mapping.items() if (fit := _fit(c, by_name.get(m.field.lower()))) is not None
    ]
    problems += [message for refused, message in fits if refused]
    if problems:
        raise MappingError(f"mapping does not fit {spec.salesforce.object}: " + "; ".join(problems))
    return [message for _refused, message in fits]


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


def _fit(canonical: str, info: FieldInfo | None) -> tuple[bool, str] | None:
    """(refused, sentence) when not every value of ``canonical`` fits the field; None when all fit."""
    if info is None:
        return None
    return _picklist_fit(canonical, info) or _length_fit(canonical, info)


def _picklist_fit(canonical: str, info: FieldInfo) -> tuple[bool, str] | None:
    allowed = restricted_values(info)
    if allowed is None:
        return None
    known = KNOWN_VALUES.get(canonical)
    where = f"{canonical} → {info.name!r} is a restricted picklist"
    if known is None:
        return (
            False,
            f"{where}: registry values outside its {len(allowed)} value(s) fail with VALUE_DOES_NOT_FIT",
        )
    missing = sorted(known - allowed)
    if not missing:
        return None
    if len(missing) == len(known):
        return True, f"{where} that lists none of the values regsync writes ({', '.join(sorted(known))})"
    return False, f"{where} without {', '.join(missing)}: those records fail with VALUE_DOES_NOT_FIT"


def _length_fit(canonical: str, info: FieldInfo) -> tuple[bool, str] | None:
    if info.type not in TEXT_TYPES or not info.length:
        return None
    known = KNOWN_VALUES.get(canonical)
    lengths = sorted(len(value) for value in known) if known else None
    longest = lengths[-1] if lengths else KNOWN_MAX_LENGTH.get(canonical)
    if longest is None or info.length >= longest:
        return None
    where = f"{canonical} → {info.name!r} holds {info.length} characters"
    if lengths and info.length < lengths[0]:
        return True, f"{where}, fewer than any value regsync writes"
    return False, f"{where}; longer values (up to {longest}) fail with VALUE_DOES_NOT_FIT"
