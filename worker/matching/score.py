"""Scoring name-search candidates against a CRM record: normalised name similarity, legal forms, address.

Pure functions (stdlib difflib). A name is normalised by case-folding, folding Nordic letters, dropping
punctuation and a trailing (or leading) legal-form word, so ``Fjordlys Data`` and ``FJORDLYS DATA AS`` are the
same name. The postal code and city, where the CRM holds them, move the score: a match adds, a mismatch takes off.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher

from worker.registry.search import Candidate

#: Legal-form words dropped from names before comparing (NO, SE, DK, FI and common English ones).
LEGAL_FORMS = frozenset(
    {
        "as", "asa", "ans", "da", "sa", "ks", "nuf", "enk", "ba", "sf", "iks", "stift",
        "ab", "publ", "hb", "kb", "ef",
        "aps", "a/s", "is", "i/s", "ivs", "smba", "amba",
        "oy", "oyj", "ky", "tmi", "t:mi", "ay",
        "ltd", "limited", "inc", "gmbh", "llc", "plc",
    }
)  # fmt: skip
#: Legal forms of sole proprietorships: a person's business, whose name is often the person's name.
SOLE_PROPRIETOR_FORMS = frozenset({"ENK", "EF", "ENSKILD FIRMA", "T:MI", "TMI", "ENKELTMANDSVIRKSOMHED"})
_FOLD = str.maketrans({"æ": "ae", "ø": "o", "å": "a", "ä": "a", "ö": "o", "&": " og "})
_NON_WORD = re.compile(r"[^\w/:]+")
#: Weights when the CRM holds a postal code and/or a city.
_POSTAL_WEIGHT = 0.1
_CITY_WEIGHT = 0.05


@dataclass(frozen=True, slots=True)
class Scored:
    candidate: Candidate
    score: float

    def as_json(self) -> dict[str, object]:
        return {**self.candidate.as_json(), "score": round(self.score, 3)}


def normalise_name(name: str) -> str:
    """``name`` folded for comparison: lower case, Nordic letters folded, punctuation and legal forms dropped."""
    text = unicodedata.normalize("NFKC", name).casefold().translate(_FOLD)
    words = [word.strip("/:") for word in _NON_WORD.sub(" ", text).split()]
    kept = [word for word in words if word and word not in LEGAL_FORMS]
    return " ".join(kept or words)


def search_text(name: str) -> str:
    """What is sent to the registry: ``name`` without legal-form words, so that ``Nordlys Bygg AS`` also finds
    ``NORDLYS BYGG`` (an ENK) and ``NORDLYS BYGG ANS``: same-named companies must all be seen to be told apart."""
    words = name.split()
    kept = [word for word in words if word.casefold().strip(".,") not in LEGAL_FORMS]
    return " ".join(kept or words)


def name_hash(name: str) -> str:
    """SHA-256 of the normalised name: tells a changed name from the one last searched, without storing it."""
    return hashlib.sha256(normalise_name(name).encode()).hexdigest()


def is_sole_proprietor(candidate: Candidate) -> bool:
    return (candidate.legal_form or "").strip().upper() in SOLE_PROPRIETOR_FORMS


def score(name: str, candidate: Candidate, postal_code: str | None, city: str | None) -> float:
    """0-1: the names' similarity, moved up or down by the postal code and city where the CRM has them."""
    similarity = SequenceMatcher(None, normalise_name(name), normalise_name(candidate.name)).ratio()
    adjust = _agreement(postal_code, candidate.postal_code, _POSTAL_WEIGHT)
    adjust += _agreement(city, candidate.city, _CITY_WEIGHT, fold=True)
    return max(0.0, min(1.0, similarity + adjust))


def _agreement(crm: str | None, registry: str | None, weight: float, *, fold: bool = False) -> float:
    """+weight when both hold the same value, -weight when both hold different ones, 0 when one is missing."""
    if not crm or not registry or not crm.strip():
        return 0.0
    same = crm.strip().casefold() == registry.strip().casefold() if fold else crm.strip() == registry.strip()
    return weight if same else -weight


def rank(name: str, candidates: list[Candidate], postal_code: str | None, city: str | None) -> list[Scored]:
    """``candidates`` scored, best first (one per org number)."""
    unique = {(c.country, c.org_number): c for c in candidates}.values()
    scored = [Scored(c, score(name, c, postal_code, city)) for c in unique]
    return sorted(scored, key=lambda s: (-s.score, s.candidate.org_number))
