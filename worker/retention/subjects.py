"""What an admin names for erasure: ``NO/923609016`` (country and org number) or a CRM record Id."""

from __future__ import annotations

import re

from worker.company import CompanyKey
from worker.crm.ids import canonical_id
from worker.errors import ConfigurationError, InvalidOrgNumber
from worker.orgnr import SUPPORTED_COUNTRIES, normalise

_COMPANY = re.compile(r"^([A-Za-z]{2})/([0-9 .-]{4,40})$")


def company_key(text: str) -> CompanyKey:
    """``CC/number`` as a key; a number failing its checksum is kept compact (failures store those too).

    Raises:
        ConfigurationError: Not ``CC/number``, or a country regsync does not support.
    """
    match = _COMPANY.match(text.strip())
    if not match or match.group(1).upper() not in SUPPORTED_COUNTRIES:
        raise ConfigurationError(
            f"--org-number {text!r}: give a country and a number, e.g. NO/923609016 "
            f"(countries: {', '.join(sorted(SUPPORTED_COUNTRIES))})"
        )
    country, raw = match.group(1).upper(), match.group(2)
    try:
        return CompanyKey(country, normalise(country, raw))
    except InvalidOrgNumber:
        return CompanyKey(country, re.sub(r"\D", "", raw))


def record_id(text: str) -> str:
    """A CRM record Id in its 18-character form.

    Raises:
        InvalidFilter: Not a 15- or 18-character record Id (a ConfigurationError).
    """
    return canonical_id(text)
