"""What a run or a backfill will cost, in registry calls and Salesforce API calls: the arithmetic `--estimate` shows.

A sync run (``run_bounds``), as a pure function of its counts, by the same rules the sync follows:

* Salesforce: the run-start check (``RUN_START_CALLS``: describe + permission queries); planning queries Id +
  key in pages of ``QUERY_PAGE`` (at least one query, even for no record); each chunk of up to ``chunk_size``
  valid records costs one sObject Collections read, and at most one collection write, only if one of its records
  changed, plus at most one describe before that write (one per worker process and Salesforce session, so
  usually far fewer). The write count is an upper bound (changes may bunch up in fewer chunks), which is what a
  budget needs.
* Registry: one call per unique valid org number per run (the per-run company cache), or, for a provider with
  a batch lookup (brreg, ``registry_batch`` 100), one call per batch of a chunk's new numbers. Invalid org
  numbers cost nothing. (brreg also asks one by one for numbers its batch leaves out: deleted or unknown units.)

``regsync backfill --estimate`` (``estimate``): what a backfill will cost, before anything runs. Counting the
selected records costs Salesforce calls too, and we say how many: one ``SELECT COUNT()`` for a filter, none for a
plain ids list (its length is the upper bound), one per 200 Ids for a list with filters. The arithmetic is the
run's above with a backfill's own query count:

* queries: ``ceil(N / QUERY_PAGE)`` pages (at least one), or one ``Id IN`` query per 200 listed Ids;
* re-reads: ``ceil(N / chunk_size)``, one sObject Collections GET per chunk;
* writes: at most ``ceil(N / chunk_size)`` (none for unchanged records; none at all in a dry run), each after
  at most one describe (the values are checked before a write; one describe serves a whole worker session);
* the run-start check: ``RUN_START_CALLS`` (describe + permission queries);
* registry: at most one call per unique valid org number, so at most ``N``; fewer with brreg's batch lookup;
  plus one name search per record the run would match by name (``[matching] enabled``: records without a valid
  org number, not searched under their current name before), none in a dry run, which only counts them.
  Finding those records reads the selection (one query call per 2,000 records), counted in ``count_calls``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, Protocol

from worker.backfill.filters import combine
from worker.backfill.options import Selection
from worker.connections.preflight import RUN_START_CALLS
from worker.crm.ids import ID_BATCH, id_batches, id_in

#: Records per Salesforce query page (queryMore: Salesforce's REST query batch size).
QUERY_PAGE = 2000


class RunBounds(NamedTuple):
    """Calls a sync run will make at most: ``registry_calls`` and ``crm_calls`` (Salesforce API)."""

    registry_calls: int
    crm_calls: int


def run_bounds(
    n_records: int,
    n_valid_unique: int,
    changed_share: float,
    chunk_size: int,
    *,
    n_valid: int | None = None,
    registry_batch: int = 1,
) -> RunBounds:
    """Registry and Salesforce calls of one sync run.

    Args:
        n_records: Records the planner reads (every record of the object, valid or not).
        n_valid_unique: Unique valid (country, org number) pairs among them.
        changed_share: Share (0..1) of valid records the registry will change.
        chunk_size: Records per chunk (the connection's ``[sync] chunk_size``, at most 200).
        n_valid: Records with a valid org number (default: ``n_records``, i.e. all valid).
        registry_batch: Org numbers per registry request (1 for Proff, 100 for brreg's batch lookup).

    Raises:
        ValueError: a count is negative, a share is outside 0..1, or a size is below 1.
    """
    valid = n_records if n_valid is None else n_valid
    _check(n_records, n_valid_unique, valid, share=changed_share, chunk_size=chunk_size, batch=registry_batch)
    chunks = math.ceil(valid / chunk_size)
    changed = math.ceil(changed_share * valid)
    writes = min(chunks, changed)
    crm = (
        RUN_START_CALLS + max(1, math.ceil(n_records / QUERY_PAGE)) + chunks + 2 * writes
    )  # write + describe
    return RunBounds(_registry_calls(n_valid_unique, chunks, registry_batch), crm)


def _registry_calls(unique: int, chunks: int, batch: int) -> int:
    if batch == 1 or unique == 0:
        return unique
    # Each chunk batches the numbers it is the first to need; spread evenly, that is unique/chunks per chunk.
    per_chunk = math.ceil(unique / chunks)
    return min(unique, chunks * math.ceil(per_chunk / batch))


def _check(records: int, unique: int, valid: int, *, share: float, chunk_size: int, batch: int) -> None:
    if min(records, unique, valid) < 0:
        raise ValueError("counts must not be negative")
    if unique > valid or valid > records:
        raise ValueError("need n_valid_unique <= n_valid <= n_records")
    if not 0.0 <= share <= 1.0:
        raise ValueError("changed_share must be between 0 and 1")
    if chunk_size < 1 or batch < 1:
        raise ValueError("chunk_size and registry_batch must be at least 1")


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
    #: Records the run would search by name (in ``registry_calls_max`` unless a dry run, which only counts).
    name_searches: int = 0

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
    shared = run_bounds(records, records, 0.0 if dry_run else 1.0, chunk_size, registry_batch=registry_batch)
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
    crm: RecordCounter,
    selection: Selection,
    *,
    chunk_size: int,
    dry_run: bool,
    registry_batch: int = 1,
    name_searches: Callable[[], int] | None = None,
) -> Estimate:
    """Count the selection and work out the calls a backfill of it will make at most.

    Args:
        registry_batch: Org numbers per registry request (1 for Proff, 100 for brreg's batch lookup).
        name_searches: Counts the records the run would search by name (with ``crm``, whose calls are
            counted); None when name matching is off.
    """
    before = crm.calls
    records, upper = count_selection(crm, selection)
    searches = name_searches() if name_searches is not None else 0
    listed = None if selection.ids is None else len(selection.ids)
    queries, reads, writes, registry = arithmetic(
        records, listed_ids=listed, chunk_size=chunk_size, dry_run=dry_run, registry_batch=registry_batch
    )
    registry += 0 if dry_run else searches
    return Estimate(
        records, upper, crm.calls - before, queries, reads, writes, registry, describe_calls_max=writes,
        name_searches=searches,
    )  # fmt: skip
