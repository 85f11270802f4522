"""``regsync backfill --estimate``: what a backfill will cost, before anything runs.

Counting the selected records costs Salesforce calls too, and we say how many: one ``SELECT COUNT()`` for a
filter, none for a plain ids list (its length is the upper bound), one per 200 Ids for a list with filters.
The arithmetic is the budget guard's (``worker.backfill.bounds``) with a backfill's own query count:

* queries: ``ceil(N / 2000)`` pages (at least one), or one ``Id IN`` query per 200 listed Ids;
* re-reads: ``ceil(N / chunk_size)``, one sObject Collections GET per chunk;
* writes: at most ``ceil(N / chunk_size)`` (none for unchanged records; none at all in a dry run), each after
  at most one describe (the values are checked before a write; one describe serves a whole worker session);
* the run-start check: ``RUN_START_CALLS`` (describe + permission queries);
* registry: at most one call per unique valid org number, so at most ``N``; fewer with brreg's batch lookup.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from worker.backfill import bounds as budget_arithmetic
from worker.backfill.filters import combine
from worker.backfill.options import Selection
from worker.connections.preflight import RUN_START_CALLS
from worker.crm.ids import ID_BATCH, id_batches, id_in

#: Records per query page (Salesforce's REST query batch size).
QUERY_PAGE = 2000


class RecordCounter(Protocol):
    calls: int

    def count(self, where: str | None = None) -> int: ...


@dataclass(frozen=True, slots=True)
class Estimate:
    """Upper bounds of a backfill's calls; ``records`` is exact unless ``records_is_upper_bound``."""

    records: int
    records_is_upper_bound: bool
    count_calls: int
    query_calls: int
    read_calls: int
    write_calls_max: int
    registry_calls_max: int
    check_calls: int = RUN_START_CALLS
    describe_calls_max: int = 0

    @property
    def crm_calls_max(self) -> int:
        """Salesforce calls the run itself will make at most (the estimate's own calls not included)."""
        checks = self.check_calls + self.describe_calls_max
        return checks + self.query_calls + self.read_calls + self.write_calls_max

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "crm_calls_max": self.crm_calls_max}


def arithmetic(
    records: int, *, listed_ids: int | None, chunk_size: int, dry_run: bool, registry_batch: int = 1
) -> tuple[int, int, int, int]:
    """(query calls, re-read calls, write calls at most, registry calls at most) for ``records`` records.

    Upper bounds: every record may have a valid, distinct org number and (unless a dry run) change.
    """
    queries = (
        max(1, math.ceil(records / QUERY_PAGE)) if listed_ids is None else math.ceil(listed_ids / ID_BATCH)
    )
    chunks = math.ceil(records / chunk_size)
    shared = budget_arithmetic.estimate(
        records, records, 0.0 if dry_run else 1.0, chunk_size, registry_batch=registry_batch
    )
    return queries, chunks, 0 if dry_run else chunks, shared.registry_calls


def count_selection(crm: RecordCounter, selection: Selection) -> tuple[int, bool]:
    """(records selected, whether that is only an upper bound), counted with as few calls as possible."""
    if selection.ids is None:
        return crm.count(selection.where), False
    if selection.where is None:
        return len(selection.ids), True  # listed Ids that no longer exist are found out by the run
    total = sum(crm.count(combine(selection.where, id_in(batch))) for batch in id_batches(selection.ids))
    return total, False


def estimate(
    crm: RecordCounter, selection: Selection, *, chunk_size: int, dry_run: bool, registry_batch: int = 1
) -> Estimate:
    """Count the selection and work out the calls a backfill of it will make at most.

    Args:
        registry_batch: Org numbers per registry request (1 for Proff, 100 for brreg's batch lookup).
    """
    before = crm.calls
    records, upper = count_selection(crm, selection)
    listed = None if selection.ids is None else len(selection.ids)
    queries, reads, writes, registry = arithmetic(
        records, listed_ids=listed, chunk_size=chunk_size, dry_run=dry_run, registry_batch=registry_batch
    )
    return Estimate(
        records, upper, crm.calls - before, queries, reads, writes, registry, describe_calls_max=writes
    )
