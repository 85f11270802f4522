"""A deterministic generator of realistic Nordic companies and the Salesforce Accounts that point at them.

Same seed, same data. Org numbers are valid (NO mod 11, SE Luhn, DK mod 11, FI Y-tunnus) and unique; they come from a
multiplicative permutation of the number space, so a million of them need no "seen" set. Account kinds:
``invalid`` (checksum fails, no company), ``dissolved`` (the registry says dissolved/bankrupt/deleted,
the CRM still says active), ``duplicate`` (shares another account's org number), ``stale`` (some mapped
field differs from the registry) and the rest, which match the registry exactly and must cause no write.
brreg has no "dissolved", so Norwegian companies are bankrupt, in liquidation or deleted instead.
"""

from __future__ import annotations

import datetime as dt
import random
from bisect import bisect
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate
from typing import Any, TypeVar

from worker.company import Address, Company, CompanyStatus
from worker.orgnr import normalise
from worker.sandbox.dataset_words import (
    CITIES,
    LEGAL_FORM_WEIGHTS,
    NACE,
    NAME_STEMS,
    NAME_WORDS,
    NAMELESS_FORMS,
    STREETS,
)

Account = dict[str, Any]
T = TypeVar("T")

#: The Account fields the dataset fills from the registry (besides Id, Org_Number__c and BillingCountryCode).
MAPPED_FIELDS: tuple[str, ...] = (
    "Name",
    "Registry_Status__c",
    "Legal_Form__c",
    "NumberOfEmployees",
    "Website",
    "BillingCity",
    "Industry_Code__c",
)

_INACTIVE: dict[str, tuple[CompanyStatus, ...]] = {
    "NO": (CompanyStatus.BANKRUPT, CompanyStatus.LIQUIDATION, CompanyStatus.DELETED),
    "SE": (CompanyStatus.DISSOLVED, CompanyStatus.BANKRUPT, CompanyStatus.DELETED),
    "DK": (CompanyStatus.DISSOLVED, CompanyStatus.BANKRUPT, CompanyStatus.DELETED),
    "FI": (CompanyStatus.DISSOLVED, CompanyStatus.BANKRUPT, CompanyStatus.DELETED),
}
_STEP = 7_654_321  # coprime with every space size below, so j -> (j * _STEP + offset) % size is a permutation
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_TLD = {"NO": "no", "SE": "se", "DK": "dk", "FI": "fi"}


def _int(rng: random.Random, low: int, high: int) -> int:
    """``rng.randint`` without its overhead (a million accounts make it matter)."""
    return low + int(rng.random() * (high - low + 1))


def _pick(rng: random.Random, items: Sequence[T]) -> T:
    return items[int(rng.random() * len(items))]


_FORMS = {country: tuple(code for code, _ in weights) for country, weights in LEGAL_FORM_WEIGHTS.items()}
_FORM_CUMULATIVE = {
    country: tuple(accumulate(weight for _, weight in weights))
    for country, weights in LEGAL_FORM_WEIGHTS.items()
}


def _legal_form(rng: random.Random, country: str) -> str:
    cumulative = _FORM_CUMULATIVE[country]
    return _FORMS[country][bisect(cumulative, rng.random() * cumulative[-1])]


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character Salesforce-style id: 15 case-sensitive characters plus the case-check suffix."""
    digits = ""
    for _ in range(10):
        number, rest = divmod(number, 62)
        digits = _B62[rest] + digits
    body = f"{prefix}5g{digits}"
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, char in enumerate(body[start : start + 5]) if "A" <= char <= "Z")
        suffix += _ID_SUFFIX[bits]
    return body + suffix


def _no_check(body: str) -> int:
    weights = (3, 2, 7, 6, 5, 4, 3, 2)
    return (11 - sum(w * int(d) for w, d in zip(weights, body, strict=True)) % 11) % 11


def _dk_check(body: str) -> int:
    weights = (2, 7, 6, 5, 4, 3, 2)
    return -sum(w * int(d) for w, d in zip(weights, body, strict=True)) % 11


def _fi_check(body: str) -> int:
    """Y-tunnus check digit; a remainder of 1 has none (10: such bodies are skipped)."""
    weights = (7, 9, 10, 5, 8, 4, 2)
    rest = sum(w * int(d) for w, d in zip(weights, body, strict=True)) % 11
    return 0 if rest == 0 else 10 if rest == 1 else 11 - rest


def _luhn_check(body: str) -> int:
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char) * (2 if index % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return -total % 10


#: country -> (first body number, size of the body space, check-digit function)
_NUMBER_SPACES = {
    "NO": (80_000_000, 20_000_000, _no_check),  # 8 digits starting 8 or 9, then mod-11 check
    "SE": (552_000_000, 8_000_000, _luhn_check),  # "55" + third digit >= 2 (a company, not a person)
    "DK": (1_000_000, 9_000_000, _dk_check),  # 7 digits, no leading zero, then mod-11 check
    "FI": (0, 1_000_000, _fi_check),  # Y-tunnus "0nnnnnn": 7 digits, then mod 11 (a leading 0 keeps off DK's)
}


class OrgNumbers:
    """Valid, unique org numbers per country, in a seed-dependent but deterministic order."""

    def __init__(self, rng: random.Random) -> None:
        # FI's offset is derived, not drawn, so adding FI left every older seed's data as it was.
        drawn = ("NO", "SE", "DK")
        self._offsets = {country: rng.randrange(_NUMBER_SPACES[country][1]) for country in drawn}
        self._offsets["FI"] = (self._offsets["NO"] * 31 + 7) % _NUMBER_SPACES["FI"][1]
        self._next = dict.fromkeys(_NUMBER_SPACES, 0)

    def next(self, country: str) -> str:
        first, size, check = _NUMBER_SPACES[country]
        while True:
            j = self._next[country]
            self._next[country] = j + 1
            body = str(first + (j * _STEP + self._offsets[country]) % size).zfill(7)
            digit = check(body)
            if digit < 10:  # mod 11 can ask for a "10": such bodies have no valid number
                return normalise(country, body + str(digit))


def invalidate(org_number: str, rng: random.Random) -> str:
    """The same number with a wrong check digit (every other digit fails all three checks)."""
    wrong = (int(org_number[-1]) + _int(rng, 1, 9)) % 10
    return org_number[:-1] + str(wrong)


def format_org_number(country: str, number: str, rng: random.Random) -> str:
    """The number as a person might have typed it into the CRM."""
    style = rng.random()
    if country == "NO" and style < 0.4:
        return f"{number[:3]} {number[3:6]} {number[6:]}"
    if country == "SE" and style < 0.6:
        return f"{number[:6]}-{number[6:]}"
    if country == "DK" and style < 0.3:
        return f"{number[:4]} {number[4:]}"
    if country == "FI" and style < 0.7:
        return f"{number[:7]}-{number[7:]}"
    return number


@dataclass
class Dataset:
    """What the registry knows (``companies``) and what the CRM holds (``accounts``)."""

    companies: list[Company]
    accounts: list[Account]
    kinds: dict[str, str] = field(default_factory=dict)

    @cached_property
    def by_org_number(self) -> dict[str, Company]:
        """Companies by compact org number (NO, SE and DK/FI numbers differ in length or first digit: no clash)."""
        return {company.org_number: company for company in self.companies}


class _Generator:
    """One pass over the accounts; keeps a few recent companies to point duplicates at."""

    def __init__(self, seed: int, countries: Sequence[str], shares: dict[str, float]) -> None:
        unknown = set(countries) - set(_NUMBER_SPACES)
        if unknown or not countries:
            raise ValueError(f"countries must be a non-empty subset of {sorted(_NUMBER_SPACES)}")
        self.rng = random.Random(seed)
        self.numbers = OrgNumbers(self.rng)
        self.countries = tuple(countries)
        self.shares = shares
        self.recent: deque[Company] = deque(maxlen=64)

    def records(self, n_accounts: int) -> Iterator[tuple[Account, Company | None, str, bool]]:
        """(account, company, kind, company_is_new) for each account, in order."""
        for index in range(n_accounts):
            yield self._record(index)

    def _kind(self) -> str:
        roll, edge = self.rng.random(), 0.0
        for kind in ("invalid", "dissolved", "duplicate"):
            edge += self.shares[kind]
            if roll < edge:
                return "duplicate" if kind == "duplicate" and not self.recent else kind
        regular = max(1e-9, 1.0 - edge)
        return "stale" if self.rng.random() < self.shares["stale"] / regular else "match"

    def _record(self, index: int) -> tuple[Account, Company | None, str, bool]:
        kind = self._kind()
        if kind == "duplicate":
            company, new = self.rng.choice(self.recent), False
            kind = "duplicate"
        else:
            company, new = self._company(_pick(self.rng, self.countries), dissolved=kind == "dissolved"), True
        account = self._account(index, company)
        if kind == "invalid":
            account["Org_Number__c"] = format_org_number(
                company.country, invalidate(company.org_number, self.rng), self.rng
            )
            return account, None, kind, False
        if kind == "dissolved":
            account["Registry_Status__c"] = CompanyStatus.ACTIVE.value
        elif kind == "stale" or (kind == "duplicate" and self.rng.random() < self.shares["stale"]):
            self._make_stale(account, company)
        self.recent.append(company)
        return account, company, kind, new

    def _company(self, country: str, *, dissolved: bool) -> Company:
        rng = self.rng
        form = _legal_form(rng, country)
        name = f"{_pick(rng, NAME_STEMS)} {_pick(rng, NAME_WORDS[country])}"
        city, postal_code = _pick(rng, CITIES[country])
        business = Address(
            street=f"{_pick(rng, STREETS[country])} {_int(rng, 1, 140)}",
            postal_code=postal_code,
            city=city,
            country=country,
        )
        postal = business if rng.random() < 0.7 else business.model_copy(update={"street": _box(rng)})
        nace_code, nace_no, nace_en = _pick(rng, NACE)
        employees = _employees(rng, form)
        return Company(
            org_number=self.numbers.next(country),
            country=country,
            name=name if form in NAMELESS_FORMS else f"{name} {form}",
            legal_form=form,
            status=_pick(rng, _INACTIVE[country]) if dissolved else CompanyStatus.ACTIVE,
            business_address=business,
            postal_address=postal,
            nace_code=nace_code,
            nace_text=nace_no if country == "NO" else nace_en,
            employees=employees,
            revenue=None if employees is None else (employees + 1) * _int(rng, 400, 2500),
            founded=dt.date(_int(rng, 1950, 2023), _int(rng, 1, 12), _int(rng, 1, 28)),
            website=_website(rng, name, country),
            last_updated=dt.date(2024, _int(rng, 1, 12), _int(rng, 1, 28)),
        )

    def _account(self, index: int, company: Company) -> Account:
        address = company.business_address or company.postal_address
        return {
            "Id": salesforce_id("001", 1_000_000 + index),
            "Name": company.name,
            "Org_Number__c": format_org_number(company.country, company.org_number, self.rng),
            "BillingCountryCode": company.country,
            "Registry_Status__c": company.status.value,
            "Legal_Form__c": company.legal_form,
            "NumberOfEmployees": company.employees,
            "Website": company.website,
            "BillingCity": address.city if address else None,
            "Industry_Code__c": company.nace_code,
        }

    def _make_stale(self, account: Account, company: Company) -> None:
        fields = self.rng.sample(MAPPED_FIELDS[:1] + MAPPED_FIELDS[2:], _int(self.rng, 1, 3))
        for name in fields:
            account[name] = _stale_value(self.rng, name, account[name], company.country)


def _box(rng: random.Random) -> str:
    return f"{'Box' if rng.random() < 0.5 else 'Postboks'} {_int(rng, 1, 999)}"


def _employees(rng: random.Random, form: str) -> int | None:
    if rng.random() < 0.08:
        return None  # not reported
    if form in NAMELESS_FORMS:
        return _int(rng, 0, 2)
    return min(int(rng.paretovariate(1.1)) - 1 + _int(rng, 0, 4), 25_000)


def _website(rng: random.Random, name: str, country: str) -> str | None:
    if rng.random() < 0.3:
        return None
    slug = "".join(char for char in name.lower() if char.isascii() and char.isalnum())
    return f"www.{slug}.{_TLD[country]}"


def _stale_value(rng: random.Random, field_name: str, current: Any, country: str) -> Any:
    """A value an out-of-date CRM could hold for ``field_name``, different from ``current``."""
    for _ in range(10):
        candidate = _stale_candidate(rng, field_name, current, country)
        if candidate != current:
            return candidate
    return f"{current} (old)"


def _stale_candidate(rng: random.Random, field_name: str, current: Any, country: str) -> Any:
    if field_name == "Name":
        return _pick(rng, [f"{current} (old)", str(current).upper(), f"{_pick(rng, NAME_STEMS)} Gruppen"])
    if field_name == "NumberOfEmployees":
        return _pick(rng, [None, (current or 0) + _int(rng, 1, 40)])
    if field_name == "Website":
        return _pick(rng, [None, f"http://old-{_int(rng, 1, 99)}.example.{_TLD[country]}"])
    if field_name == "BillingCity":
        return _pick(rng, CITIES[country])[0]
    if field_name == "Industry_Code__c":
        return _pick(rng, NACE)[0]
    return _pick(rng, [None, *(code for code, _ in LEGAL_FORM_WEIGHTS[country])])


def _shares(**shares: float) -> dict[str, float]:
    if any(not 0.0 <= value <= 1.0 for value in shares.values()):
        raise ValueError("shares must be between 0 and 1")
    if shares["invalid"] + shares["dissolved"] + shares["duplicate"] + shares["stale"] > 1.0:
        raise ValueError("invalid + dissolved + duplicate + stale shares must not exceed 1")
    return shares


def iter_records(
    n_accounts: int,
    *,
    seed: int = 7,
    countries: Sequence[str] = ("NO",),
    invalid_share: float = 0.02,
    dissolved_share: float = 0.03,
    duplicate_share: float = 0.02,
    stale_share: float = 0.3,
) -> Iterator[tuple[Account, Company | None, str, bool]]:
    """Lazily yield ``(account, company or None, kind, company_is_new)``; same arguments, same sequence.

    ``kind`` is one of invalid, dissolved, duplicate, stale, match; ``company_is_new`` is False for a
    duplicate (its company was yielded before) and for an invalid account (it has no company).
    """
    shares = _shares(
        invalid=invalid_share, dissolved=dissolved_share, duplicate=duplicate_share, stale=stale_share
    )
    yield from _Generator(seed, countries, shares).records(n_accounts)


def iter_accounts(n_accounts: int, **options: Any) -> Iterator[Account]:
    """Only the Account records of :func:`iter_records` (same options), for million-record benchmarks."""
    for account, _, _, _ in iter_records(n_accounts, **options):
        yield account


def make_dataset(
    n_accounts: int,
    *,
    seed: int = 7,
    countries: Sequence[str] = ("NO",),
    invalid_share: float = 0.02,
    dissolved_share: float = 0.03,
    duplicate_share: float = 0.02,
    stale_share: float = 0.3,
    created_at: dt.datetime | None = None,
) -> Dataset:
    """Build the whole dataset in memory; ``kinds`` maps each account Id to its kind.

    ``created_at``: the accounts' CreatedDate, LastModifiedDate and SystemModstamp (UTC); None (the default)
    leaves them to the sandbox org, which stamps its seeded records with its own creation time. A benchmark
    that sets the ``crm:Account`` watermark right after seeding passes an instant in the past, so that the
    first SystemModstamp delta (which reaches back an overlap before the watermark) does not re-read them all.
    """
    stamps = _stamps(created_at)
    dataset = Dataset(companies=[], accounts=[])
    records = iter_records(
        n_accounts,
        seed=seed,
        countries=countries,
        invalid_share=invalid_share,
        dissolved_share=dissolved_share,
        duplicate_share=duplicate_share,
        stale_share=stale_share,
    )
    for account, company, kind, new in records:
        account.update(stamps)
        dataset.accounts.append(account)
        dataset.kinds[account["Id"]] = kind
        if company is not None and new:
            dataset.companies.append(company)
    return dataset


def _stamps(created_at: dt.datetime | None) -> dict[str, str]:
    """The audit fields of a seeded record created at ``created_at``, as Salesforce writes them."""
    if created_at is None:
        return {}
    when = created_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    return {"CreatedDate": when, "LastModifiedDate": when, "SystemModstamp": when}
