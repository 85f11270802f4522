"""Does a value fit a Salesforce field? Restricted picklists and text lengths, checked before any PATCH.

Salesforce refuses such a value per record (``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST``, ``STRING_TOO_LONG``)
after the call was spent; regsync finds it first, from the object's describe (PROTOCOLS.md 3.6), and never
sends the record: it fails with ``VALUE_DOES_NOT_FIT``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.crm.port import CrmRecord, FieldInfo, WriteResult

VALUE_DOES_NOT_FIT = "VALUE_DOES_NOT_FIT"
#: Field types whose ``length`` bounds the characters of a value (describe's ``length`` is 0 for the others).
TEXT_TYPES = frozenset(
    {
        "string",
        "textarea",
        "url",
        "phone",
        "email",
        "picklist",
        "multipicklist",
        "combobox",
        "encryptedstring",
    }
)
_SHOWN_MAX = 40


def restricted_values(info: FieldInfo) -> frozenset[str] | None:
    """The values a restricted picklist accepts, or None when the field accepts any value.

    Only *active* values count (assumption: Salesforce refuses an inactive value of a restricted picklist
    through the API as it does in the UI). Matching is exact, case included (assumption).
    """
    if not info.extra.get("restrictedPicklist"):
        return None
    entries = info.extra.get("picklistValues") or []
    return frozenset(
        str(entry["value"])
        for entry in entries
        if isinstance(entry, dict) and "value" in entry and entry.get("active", True)
    )


def value_problem(info: FieldInfo, value: Any) -> str | None:
    """Why ``value`` cannot be written to the field, or None when it fits (None always fits here)."""
    if value is None:
        return None
    allowed = restricted_values(info)
    if allowed is not None:
        items = str(value).split(";") if info.type == "multipicklist" else [str(value)]
        outside = [item for item in items if item not in allowed]
        if outside:
            return f"{info.name}: {_shown(outside[0])} is not a value of its restricted picklist"
    if info.type in TEXT_TYPES and info.length and isinstance(value, str) and len(value) > info.length:
        return f"{info.name}: the value has {len(value)} characters, the field holds at most {info.length}"
    return None


def record_problem(record: CrmRecord, fields: Mapping[str, FieldInfo]) -> str | None:
    """The first field of ``record`` whose value does not fit (``fields`` keyed by lower-case API name)."""
    for name, value in record.items():
        info = fields.get(name.lower())
        problem = None if info is None or name in ("Id", "attributes") else value_problem(info, value)
        if problem:
            return problem
    return None


def refusals(records: list[CrmRecord], fields: Mapping[str, FieldInfo]) -> dict[int, WriteResult]:
    """The records (by position) that must not be sent, each with its VALUE_DOES_NOT_FIT result."""
    refused: dict[int, WriteResult] = {}
    for position, record in enumerate(records):
        problem = record_problem(record, fields)
        if problem:
            refused[position] = WriteResult(str(record["Id"]), False, VALUE_DOES_NOT_FIT, problem)
    return refused


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN_MAX else value[: _SHOWN_MAX - 1] + "…")
