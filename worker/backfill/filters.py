"""Backfill filters → a SOQL WHERE clause: only the object's fields, fixed operators, typed and escaped literals.

Pure functions, no I/O. A value reaches the SOQL text either through ``soql_quote`` (so it can only ever match
itself) or, for number, date, datetime and boolean fields, only when it matches a strict pattern of that type.
Field names must be API names of the object (checked against its describe) and operators come from a fixed
list, so no part of a filter can change the shape of the query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from worker.crm.port import FieldInfo
from worker.crm.soql import soql_quote
from worker.errors import InvalidFilter

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "LIKE")
_ORDERING = frozenset({"<", "<=", ">", ">="})
_EQUALITY = frozenset({"=", "!="})
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_NUMBER = re.compile(r"^-?\d{1,18}(\.\d{1,18})?$")
_INTEGER = re.compile(r"^-?\d{1,18}$")
#: How a message names a field type (Salesforce's own names read badly: "is a int field").
_KIND_WORDS = {
    "int": "an integer",
    "long": "an integer",
    "double": "a number",
    "currency": "a currency",
    "percent": "a percent",
    "date": "a date",
    "datetime": "a datetime",
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:\d{2})$")

TEXT_TYPES = frozenset(
    {
        "string",
        "textarea",
        "picklist",
        "multipicklist",
        "combobox",
        "url",
        "phone",
        "email",
        "id",
        "reference",
    }
)
NUMBER_TYPES = frozenset({"int", "long", "double", "currency", "percent"})
#: Field types a filter may use (others, e.g. address or base64, cannot be filtered on in SOQL anyway).
FILTERABLE_TYPES = TEXT_TYPES | NUMBER_TYPES | {"boolean", "date", "datetime"}


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``FIELD OP VALUE`` filter; ``type`` is the field's Salesforce type (from describe)."""

    field: str
    op: str
    value: str
    type: str = "string"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def make_condition(field: str, op: str, value: str, fields: Mapping[str, FieldInfo]) -> Condition:
    """A checked condition on a field of the object.

    Args:
        field: Field API name as the admin typed it (case-insensitive, like Salesforce).
        op: One of ``OPERATORS`` (``like`` in any case).
        value: The value as typed; ``null`` (any case) with ``=``/``!=`` means an empty field.
        fields: The object's describe, by field API name.

    Raises:
        InvalidFilter: Unknown field, unsupported operator, or a value that does not fit the field's type.
    """
    if not FIELD_NAME.match(field):
        raise InvalidFilter(f"filter: {field!r} is not a Salesforce field API name (letters, digits, _)")
    info = {name.lower(): found for name, found in fields.items()}.get(field.lower())
    if info is None:
        raise InvalidFilter(f"filter: the object has no field {field!r}; check the API name in Setup")
    if info.type not in FILTERABLE_TYPES:
        raise InvalidFilter(f"filter: field {info.name!r} of type {info.type!r} cannot be filtered on")
    condition = Condition(info.name, op.strip().upper(), value, info.type)
    soql(condition)  # validates operator and literal now, not when the run plans
    return condition


def condition_from_dict(data: Mapping[str, str]) -> Condition:
    """A condition as stored in a run's options (checked again when it becomes SOQL)."""
    return Condition(str(data["field"]), str(data["op"]), str(data["value"]), str(data.get("type", "string")))


def soql(condition: Condition) -> str:
    """``Field OP literal`` for one condition.

    Raises:
        InvalidFilter: The field name, operator or value cannot be expressed safely.
    """
    if not FIELD_NAME.match(condition.field):
        raise InvalidFilter(f"filter: {condition.field!r} is not a Salesforce field API name")
    if condition.op not in OPERATORS:
        raise InvalidFilter(f"filter: operator {condition.op!r} is not one of {' '.join(OPERATORS)}")
    return f"{condition.field} {condition.op} {literal(condition)}"


def literal(condition: Condition) -> str:
    """The SOQL literal for the condition's value, typed by its field."""
    value, op, kind = condition.value, condition.op, condition.type
    if value.strip().lower() == "null":
        if op not in _EQUALITY:
            raise InvalidFilter("filter: null can only be compared with = or !=")
        return "null"
    if op == "LIKE" and kind not in TEXT_TYPES:
        raise InvalidFilter(
            f"filter: LIKE only works on text fields, not on {kind} field {condition.field!r}"
        )
    if kind in TEXT_TYPES:
        return soql_quote(value)
    return _typed_literal(condition)


def _typed_literal(condition: Condition) -> str:
    value, kind = condition.value.strip(), condition.type
    if kind == "boolean":
        if condition.op not in _EQUALITY or value.lower() not in ("true", "false"):
            raise InvalidFilter(f"filter: {condition.field!r} is a checkbox: use = or != with true or false")
        return value.lower()
    patterns = {"date": (_DATE, "YYYY-MM-DD"), "datetime": (_DATETIME, "YYYY-MM-DDThh:mm:ssZ")}
    pattern, shape = patterns.get(kind, (_NUMBER, "a number like 42 or -1.5"))
    if kind in ("int", "long"):
        pattern, shape = _INTEGER, "a whole number like 42"
    if not pattern.match(value):
        raise InvalidFilter(
            f"filter: {condition.field!r} is {_KIND_WORDS.get(kind, kind)} field; give {shape}"
        )
    return value


def where_clause(conditions: list[Condition]) -> str | None:
    """Every condition joined with AND (None when there is none)."""
    return combine(*(soql(condition) for condition in conditions))


def combine(*parts: str | None) -> str | None:
    """AND the non-empty parts; each is parenthesised when there is more than one."""
    present = [part for part in parts if part]
    if len(present) <= 1:
        return present[0] if present else None
    return " AND ".join(f"({part})" for part in present)
