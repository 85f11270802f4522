"""What the ledger never stores in the first place: values quoted in CRM failure messages, and samples of
sole proprietorships (whose company name is a person's name and whose address is often a home)."""

from __future__ import annotations

import re

from worker.company import Company

#: Legal forms of sole proprietorships: NO/DK ENK, SE EF (enskild firma), FI TMI (toiminimi).
SOLE_PROPRIETOR_FORMS = frozenset({"ENK", "EF", "TMI"})
MASK = "***"

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|“[^”]*”|«[^»]*»|‘[^’]*’")
_LONG_NUMBER = re.compile(r"\d{5,}")


def mask_values(message: str) -> str:
    """``message`` with quoted text and numbers longer than 4 digits masked (a validation rule may quote values)."""
    return _LONG_NUMBER.sub(MASK, _QUOTED.sub(f'"{MASK}"', message))


def sole_proprietor(company: Company | None) -> bool:
    """True for a sole proprietorship: its values are personal data, so they are counted, never sampled."""
    form = (company.legal_form or "").strip().upper() if company is not None else ""
    return form in SOLE_PROPRIETOR_FORMS
