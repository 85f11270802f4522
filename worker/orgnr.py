"""Organisation-number validation per country, with python-stdnum, before anything leaves regsync."""

from __future__ import annotations

from collections.abc import Callable

from stdnum.dk import cvr
from stdnum.exceptions import ValidationError
from stdnum.fi import ytunnus
from stdnum.no import orgnr as no_orgnr
from stdnum.se import orgnr as se_orgnr

from worker.errors import InvalidOrgNumber

_VALIDATORS: dict[str, Callable[[str], str]] = {
    "NO": no_orgnr.validate,
    "SE": se_orgnr.validate,
    "DK": cvr.validate,
    "FI": ytunnus.validate,
}

SUPPORTED_COUNTRIES: frozenset[str] = frozenset(_VALIDATORS)


def normalise(country: str | None, raw: str | None) -> str:
    """Validate ``raw`` for ``country`` and return its compact form (digits; FI keeps its dash).

    Raises:
        InvalidOrgNumber: the value is missing, the country unsupported or the checksum wrong.
    """
    code = (country or "").strip().upper()
    if not raw or not str(raw).strip():
        raise InvalidOrgNumber("organisation number is missing")
    validator = _VALIDATORS.get(code)
    if validator is None:
        raise InvalidOrgNumber(f"country {code or '(blank)'!r} is not supported (use one of NO, SE, DK, FI)")
    try:
        return validator(str(raw))
    except ValidationError as exc:
        raise InvalidOrgNumber(f"{code} organisation number fails validation: {exc}") from exc
