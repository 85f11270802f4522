"""The sandbox registries' name search: which companies a ``query`` / ``navn`` search finds, best first.

Neither registry documents its ranking. This sandbox assumes a word search: a company is a hit when every word
of the query (case-folded, two characters or more) starts a word of its name; hits with fewer extra words come
first. Deleted, removed and not-found companies are no hits (brreg still lists deleted units by name in reality;
regsync drops any with ``slettedato`` anyway). An assumption, marked as such.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from worker.company import Company, CompanyStatus

_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return [word.casefold() for word in _WORD.findall(text)]


def search_companies(companies: Iterable[Company], country: str, query: str) -> list[Company]:
    """The hits of ``query`` among ``companies`` of ``country``, best first (fewest extra words, then name)."""
    wanted = [word for word in _words(query) if len(word) >= 2]
    if not wanted:
        return []
    hits: list[tuple[int, str, Company]] = []
    for company in companies:
        if company.country != country or not company.name:
            continue
        if company.status in (CompanyStatus.DELETED, CompanyStatus.NOT_FOUND):
            continue
        words = _words(company.name)
        if all(any(word.startswith(part) for word in words) for part in wanted):
            hits.append((len(words) - len(wanted), company.name, company))
    return [company for _, _, company in sorted(hits, key=lambda hit: (hit[0], hit[1]))]
