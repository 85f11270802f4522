"""Searching text that leaves regsync (alert payloads, mails, SIEM lines) for secrets and record values
(not a test module)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.pool import NullPool

from worker.company import Company
from worker.sandbox.dataset import MAPPED_FIELDS, Dataset
from worker.sandbox.dataset_words import SOLE_PROPRIETOR_FORMS
from worker.sandbox.proff_json import sandbox_person

#: Values shorter than this are not searched for (two-letter legal forms, small counts collide with anything).
MIN_TEXT = 4
#: Purely numeric values are searched as standalone tokens, and only from this many digits on.
MIN_DIGITS = 5


def _leaves(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def record_values(dataset: Dataset) -> set[str]:
    """Every mapped CRM field value of the sandbox accounts, their org numbers, and every registry value."""
    values: set[str] = set()
    for account in dataset.accounts:
        for name in (*MAPPED_FIELDS, "Org_Number__c"):
            values.update(_leaves(account.get(name)))
    for company in dataset.companies:
        values.update(_leaves(Company.model_dump(company, mode="json")))
    return {v.strip() for v in values if _searchable(v.strip())}


def _searchable(value: str) -> bool:
    if re.search(r"[A-Za-z]", value):
        return len(value) >= MIN_TEXT
    return len(re.sub(r"\D", "", value)) >= MIN_DIGITS


def found_in(text: str, needles: Iterable[str]) -> list[str]:
    """The needles that occur in ``text`` (numeric ones only as whole tokens)."""
    hits = []
    for needle in needles:
        if re.search(r"[A-Za-z]", needle):
            if needle in text:
                hits.append(needle)
        elif re.search(rf"(?<![0-9A-Za-z]){re.escape(needle)}(?![0-9A-Za-z])", text):
            hits.append(needle)
    return hits


def person_values(dataset: Dataset) -> set[str]:
    """The invented people the sandbox's Proff listings name for the dataset's sole proprietorships."""
    people = (sandbox_person(c) for c in dataset.companies if c.legal_form in SOLE_PROPRIETOR_FORMS)
    return {value for person in people for value in person.values()}


def ledger_text(database_url: str) -> str:
    """Every row of every ledger table as text (run errors, failure messages, audit events …)."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return "\n".join(
                repr(row) for table in metadata.sorted_tables for row in connection.execute(select(table))
            )
    finally:
        engine.dispose()
