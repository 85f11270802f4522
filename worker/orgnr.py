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
    """Validate ``raw`` for ``country`` and return its compact form (digits only, for every country).

    The same formatting noise is tolerated for every country: spaces, dashes and dots, and the country's own
    prefix (``NO923609016``, ``SE5560360793``), as python-stdnum already does for DK and FI.

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
        return validator(_without_noise(code, str(raw)))
    except ValidationError as exc:
        raise InvalidOrgNumber(f"{code} organisation number fails validation: {exc}") from exc


def _without_noise(code: str, raw: str) -> str:
    """``raw`` without separators and without a leading country prefix (``NO``, ``SE`` …)."""
    compact = "".join(ch for ch in raw if ch not in " -.\t").upper()
    return compact[len(code) :] if compact.startswith(code) else compact
