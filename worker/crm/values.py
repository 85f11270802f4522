"""CRM field values: their JSON form, their comparable form, and the hash the ledger stores instead of them.

Pure functions, no imports of regsync's: the field policies (``sync/policies``) compare with them and the ledger's
write tracking (``ledger/writes``) hashes with them, so they sit below both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

CrmValue = str | int | float | bool | None


def to_crm(value: str | int | dt.date | None) -> CrmValue:
    """A canonical value as Salesforce's JSON wants it (dates as ISO strings)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def normalise(value: Any) -> Any:
    """Comparable form of a CRM or registry value: trimmed strings, ints for whole floats, '' as None."""
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def value_hash(value: Any) -> str:
    """A hash of a field value, stored instead of the value so the ledger holds no CRM data."""
    encoded = json.dumps(normalise(value), sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()
