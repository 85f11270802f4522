"""SOQL text: string literals that can only match themselves, and SELECTs over checked field names.

Pure functions with no Salesforce client behind them, so filters, backfill selections and Id files can build
their conditions without importing the client (simple-salesforce pulls in zeep: 0.2 s of a CLI start-up).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
_SOQL_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def soql_quote(value: str) -> str:
    """``value`` as a quoted SOQL string literal, with backslash escapes, so it can only match itself."""
    return "'" + "".join(_SOQL_ESCAPES.get(ch, ch) for ch in value) + "'"


def build_soql(
    object_name: str, fields: Sequence[str], where: str | None = None, order_by: str | None = None
) -> str:
    """``SELECT <fields> FROM <object> [WHERE <where>] [ORDER BY <field>]``; names are checked, ``where`` is
    trusted SOQL."""
    bad = [name for name in [*fields, *([order_by] if order_by else [])] if not _FIELD.match(name)]
    if not fields or bad:
        raise ValueError(f"not Salesforce field API names: {bad or 'no fields'}")
    # Field names are checked above and ``object_name`` comes from the validated spec: no injection path.
    soql = f"SELECT {', '.join(dict.fromkeys(fields))} FROM {object_name}"  # noqa: S608
    soql = f"{soql} WHERE {where}" if where else soql
    return f"{soql} ORDER BY {order_by}" if order_by else soql
