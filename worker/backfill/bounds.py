"""What a run will cost, in registry calls and Salesforce API calls: the arithmetic `--estimate` shows.

The same rules the sync follows, as a pure function:

* Salesforce: the run-start check (``RUN_START_CALLS``: describe + permission queries); planning queries Id +
  key in pages of 2,000 (at least one query, even for no record); each chunk of up to ``chunk_size`` valid
  records costs one sObject Collections read, and at most one collection write, only if one of its records
  changed, plus at most one describe before that write (one per worker process and Salesforce session, so
  usually far fewer). The write count is an upper bound (changes may bunch up in fewer chunks), which is what a
  budget needs.
* Registry: one call per unique valid org number per run (the per-run company cache), or, for a provider with
  a batch lookup (brreg, ``registry_batch`` 100), one call per batch of a chunk's new numbers. Invalid org
  numbers cost nothing. (brreg also asks one by one for numbers its batch leaves out: deleted or unknown units.)
"""

from __future__ import annotations

import math
from typing import NamedTuple

from worker.connections.preflight import RUN_START_CALLS

#: Records per Salesforce query page (queryMore).
QUERY_PAGE = 2000


class Estimate(NamedTuple):
    """Calls a run will make at most: ``registry_calls`` and ``crm_calls`` (Salesforce API)."""

    registry_calls: int
    crm_calls: int


def estimate(
    n_records: int,
    n_valid_unique: int,
    changed_share: float,
    chunk_size: int,
    *,
    n_valid: int | None = None,
    registry_batch: int = 1,
) -> Estimate:
    """Registry and Salesforce calls of one run.

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
    return Estimate(_registry_calls(n_valid_unique, chunks, registry_batch), crm)


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
