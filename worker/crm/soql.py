"""SOQL text: string literals that can only match themselves, and SELECTs over checked field names.

Pure functions with no Salesforce client behind them, so filters, backfill selections and Id files can build
their conditions without importing the client (simple-salesforce pulls in zeep: 0.2 s of a CLI start-up).
"""

from __future__ import annotations

import datetime as dt
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


#: How far back a SystemModstamp read reaches before its watermark: a transaction that commits late carries a
#: stamp older than rows already read (PROTOCOLS.md 3.7). The size is an assumption; re-reading costs rows, not
#: correctness, as an unchanged key is not reported again.
MODSTAMP_OVERLAP = dt.timedelta(minutes=2)


def build_soql(
    object_name: str, fields: Sequence[str], where: str | None = None, order_by: str | None = None
) -> str:
    """``SELECT <fields> FROM <object> [WHERE <where>] [ORDER BY <field>[, <field>...]]``; names are checked,
    ``where`` is trusted SOQL."""
    ordering = [name.strip() for name in order_by.split(",")] if order_by else []
    bad = [name for name in [*fields, *ordering] if not _FIELD.match(name)]
    if not fields or bad:
        raise ValueError(f"not Salesforce field API names: {bad or 'no fields'}")
    # Field names are checked above and ``object_name`` comes from the validated spec: no injection path.
    soql = f"SELECT {', '.join(dict.fromkeys(fields))} FROM {object_name}"  # noqa: S608
    soql = f"{soql} WHERE {where}" if where else soql
    return f"{soql} ORDER BY {', '.join(ordering)}" if ordering else soql


def modified_since(since: dt.datetime | None) -> str | None:
    """The condition of a SystemModstamp read: ``SystemModstamp > <since - overlap>`` as an unquoted UTC datetime
    literal in whole seconds (rounded down: a read reaches further back, never less far); None reads all.

    Raises:
        ValueError: ``since`` has no time zone (a naive time is ambiguous).
    """
    if since is None:
        return None
    if since.tzinfo is None:
        raise ValueError("a SystemModstamp watermark needs a time zone")
    start = (since - MODSTAMP_OVERLAP).astimezone(dt.UTC).replace(microsecond=0)
    return f"SystemModstamp > {start.strftime('%Y-%m-%dT%H:%M:%SZ')}"
