"""Name search: the registry's companies whose names resemble a CRM record's, as match candidates.

Only the name and the country leave regsync. Proff: ``GET /api/companies/register/{cc}?query=&pageNumber=1&
pageSize=N`` (PROTOCOLS.md 1.2: one call per search, more only per opened hit, which regsync never opens);
Brønnøysund: ``GET /enheter?navn=&size=N`` (a HAL search page, section 2.1). A malformed answer is a
RegistryMalformed, never an empty list (no candidates would send every record to review as "no match").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx
from pydantic import ValidationError

from worker.errors import RegistryMalformed

#: Candidates read per search: the first page only (the best hits come first in both registries).
MAX_CANDIDATES = 20


@dataclass(frozen=True, slots=True)
class Candidate:
    """One company a name search found; registry data only (an ENK's name may be a person's: never logged)."""

    country: str
    org_number: str
    name: str
    legal_form: str | None = None
    postal_code: str | None = None
    city: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "country": self.country,
            "org_number": self.org_number,
            "name": self.name,
            "legal_form": self.legal_form,
            "postal_code": self.postal_code,
            "city": self.city,
        }


@runtime_checkable
class NameSearch(Protocol):
    """A registry that can search companies by name (both providers; tests' fakes may not)."""

    calls: int

    def search_by_name(self, name: str, country: str) -> list[Candidate]: ...


def search_answer(response: httpx.Response, parse: Callable[[Any], list[Candidate]]) -> list[Candidate]:
    """The candidates of one search answer; 404 (nothing found, some registries say) is none.

    Raises:
        RegistryMalformed: not JSON, or not the documented shape, or an unexpected status.
    """
    if response.status_code == 404:
        return []
    if response.status_code != 200:
        raise RegistryMalformed(f"name search answered HTTP {response.status_code}")
    try:
        payload = json.loads(response.content)
        return parse(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, ValidationError, TypeError, KeyError) as exc:
        raise RegistryMalformed("name search answer is not in the registry's documented shape") from exc
