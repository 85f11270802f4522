"""The changes benchmark's scripted feed, made inside the sandbox world's process (``bench.world_server``).

3,000 Proff feed items by default (0.3 % of 1,000,000 Accounts), about half of them touching a mapped path of a
company the CRM holds: name changes, companies that became inactive (Proff MUTATED on the status) and companies
removed from open data (REMOVED); the rest touch no mapped path (the founding date) or are new units the CRM
does not hold (ADDED). Deterministic: the same seed picks the same companies.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from typing import Any

from worker.company import Company, CompanyStatus
from worker.errors import InvalidOrgNumber
from worker.orgnr import normalise
from worker.sandbox.dataset import _no_check
from worker.sandbox.stack import Stack

#: Shares of the feed, by what the change is (mapped = touches a mapped path of a company the CRM holds).
MIX = {"name": 0.4333, "inactive": 0.0333, "removed": 0.0334, "unmapped": 0.1667, "new": 0.3333}
MAPPED = frozenset({"name", "inactive", "removed"})


def _counts(total: int) -> dict[str, int]:
    counts = {kind: round(total * share) for kind, share in MIX.items()}
    counts["new"] += total - sum(counts.values())
    return counts


def script_feed(stack: Stack, total: int, seed: int = 14) -> dict[str, Any]:
    """Script ``total`` feed items; returns how many of each kind, and how many CRM records they match."""
    counts = _counts(total)
    held = _held_by_crm(stack)
    active = [c for c in stack.dataset.companies if c.status is CompanyStatus.ACTIVE and _key(c) in held]
    rng = random.Random(seed)
    changed = rng.sample(active, total - counts["new"])
    kinds = [kind for kind in MIX if kind != "new" for _ in range(counts[kind])]
    registry = stack.registry
    matched_records = 0
    for company, kind in zip(changed, kinds, strict=True):
        _script_one(stack, company, kind)
        matched_records += held[_key(company)] if kind in MAPPED else 0
    for number in _numbers_not_held(stack, counts["new"]):
        registry.script_new(
            Company(org_number=number, country="NO", status=CompanyStatus.ACTIVE, name=f"Ny {number} AS")
        )
    return {
        "kinds": counts,
        "mapped_changes": sum(counts[k] for k in MAPPED),
        "mapped_records": matched_records,
        "position": dt.datetime.now(dt.UTC).date().isoformat(),
    }


def _script_one(stack: Stack, company: Company, kind: str) -> None:
    registry = stack.registry
    if kind == "name":
        registry.script_change(company.model_copy(update={"name": (company.name or "") + " Endret AS"}))
    elif kind == "inactive":
        registry.script_delete(company.country, company.org_number)
    elif kind == "removed":
        registry.script_remove(company.country, company.org_number)
    else:
        founded = dt.date(1990, 1, 1) if company.founded != dt.date(1990, 1, 1) else dt.date(1991, 1, 1)
        registry.script_change(company.model_copy(update={"founded": founded}))


def _key(company: Company) -> tuple[str, str]:
    return company.country, company.org_number


def _held_by_crm(stack: Stack) -> Counter[tuple[str, str]]:
    """Records per normalised (country, org number) the org holds."""
    held: Counter[tuple[str, str]] = Counter()
    for account in stack.dataset.accounts:
        country = str(account.get("BillingCountryCode") or "")
        try:
            held[(country, normalise(country, account.get("Org_Number__c")))] += 1
        except InvalidOrgNumber:
            continue
    return held


def _numbers_not_held(stack: Stack, n: int) -> list[str]:
    taken = {c.org_number for c in stack.dataset.companies}
    found: list[str] = []
    body = 98_000_000
    while len(found) < n:
        body += 1
        check = _no_check(str(body))
        number = f"{body}{check}"
        if check != 10 and number not in taken:
            found.append(number)
    return found
