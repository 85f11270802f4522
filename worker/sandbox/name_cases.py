"""Leads without org numbers whose Company names match 0, 1 or several registry companies, with known answers.

Built from a dataset's companies, renamed with invented words: a name carried by one company (an AS) has one
right answer; a name carried by two companies (an AS and an ENK or ANS of the same words), typed without an
address, has none a machine may pick; an ENK's name is a person's business and must never be matched by itself;
a name nobody carries matches nothing. The Lead types the words alone or the full registered name, with the city
and postal code 70% of the time (never for a shared name).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from worker.company import Company, CompanyStatus
from worker.sandbox.dataset import salesforce_id

Kind = Literal["one", "several", "enk", "none"]
#: Share of each kind among the generated Leads.
KIND_SHARES: tuple[tuple[Kind, float], ...] = (("one", 0.6), ("several", 0.2), ("enk", 0.1), ("none", 0.1))
#: Share of the one-answer cases whose registry also holds a "<name> HOLDING AS" (a near miss).
DECOY_SHARE = 0.3
_SOLE = frozenset({"ENK", "EF", "TMI"})


@dataclass(frozen=True, slots=True)
class NameCase:
    """One Lead and what a correct matcher may do with it: fill ``answer`` (kind ``one``) or fill nothing."""

    lead: dict[str, Any]
    kind: Kind
    answer: str | None


def _words_of(company: Company) -> str:
    """The company's name without its legal form, case-folded: the name a CRM user would type."""
    name = company.name or ""
    form = company.legal_form or ""
    if form and name.upper().endswith(" " + form.upper()):
        name = name[: -len(form) - 1]
    return name.casefold()


def name_cases(
    companies: Sequence[Company], n: int, *, country: str = "NO", seed: int = 11
) -> tuple[list[Company], list[NameCase]]:
    """``n`` Leads without org numbers in the shares of :data:`KIND_SHARES`, and the registry companies they
    were made from, renamed so that each case's name is carried by exactly the companies its kind says (put
    them into the sandbox registry: they replace the originals under the same org numbers)."""
    rng = random.Random(seed)
    pool = [c for c in companies if c.country == country and c.status is CompanyStatus.ACTIVE]
    rng.shuffle(pool)
    maker = _Names(rng)
    renamed: list[Company] = []
    cases = []
    for index in range(n):
        kind = _kind(rng) if len(pool) >= 3 else "none"
        case, used = _case(index, kind, pool=pool, maker=maker, rng=rng, country=country)
        renamed += used
        cases.append(case)
    return renamed, cases


class _Names:
    """Invented, unique name words (``Veltramo``), so that a case's name is nobody else's."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._seen: set[str] = set()

    def word(self) -> str:
        while True:
            syllables = [self._rng.choice("bdfgklmnprstv") + self._rng.choice("aeiouy") for _ in range(3)]
            word = "".join(syllables).capitalize() + self._rng.choice(("n", "r", "s", "k", ""))
            if word not in self._seen:
                self._seen.add(word)
                return word


def _kind(rng: random.Random) -> Kind:
    roll, edge = rng.random(), 0.0
    for kind, share in KIND_SHARES:
        edge += share
        if roll < edge:
            return kind
    return "none"


def _case(
    index: int, kind: Kind, *, pool: list[Company], maker: _Names, rng: random.Random, country: str
) -> tuple[NameCase, list[Company]]:
    lead: dict[str, Any] = {
        "Id": salesforce_id("00Q", 3_000_000 + index),
        "LastName": f"Prospect {index}",
        "Status": "Open",
        "CountryCode": country,
    }
    words = f"{maker.word()} {maker.word()}"
    if kind == "none":
        lead["Company"] = words
        return NameCase(lead, kind, None), []
    forms = {"one": ["AS"], "several": ["AS", rng.choice(("ENK", "ANS", "DA", "AS"))], "enk": ["ENK"]}[kind]
    used = [_renamed(pool.pop(), words, form) for form in forms]
    first = used[0]
    lead["Company"] = words if rng.random() < 0.5 else (first.name or words)
    if kind == "one" and rng.random() < DECOY_SHARE:  # a sister company whose name only starts the same
        used.append(_renamed(pool.pop(), f"{words} Holding", "AS"))
    address = first.business_address or first.postal_address
    if address and kind != "several" and rng.random() < 0.7:  # an address would tell same-named ones apart
        lead.update(City=address.city, PostalCode=address.postal_code)
    return NameCase(lead, kind, first.org_number if kind == "one" else None), used


def _renamed(company: Company, words: str, form: str) -> Company:
    """``company`` carrying ``words`` (and ``form``: an ENK's name has no legal-form suffix)."""
    name = words.upper() if form in _SOLE else f"{words.upper()} {form}"
    return company.model_copy(update={"name": name, "legal_form": form})
