"""The run counters: one type for what a chunk counts and a run sums over its chunks.

``Counts`` is the one list of counters. The chunk outcome builds it (``worker.sync.chunk_work.Outcome.counts``),
``chunks.finish`` stores it on the chunk, ``runs.add_chunk_result`` adds it to the run, and the views, the CLI
summary and the API's ``RunOut`` show it; each of those takes the names from here. The ledger keeps them in the
columns of ``models.SyncCounters`` (tests/unit/test_counters.py checks that both list the same names, in the same
order, and that the API schema has a field for each). A new counter: a field here, its column and a migration,
and the code that counts it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True, slots=True)
class Counts:
    """What a chunk counted, and a run sums over its chunks: records by fate, calls by service."""

    #: Records whose company the registry returned.
    fetched: int = 0
    #: Records already right: nothing to write.
    unchanged: int = 0
    #: Records written (a dry run: records that would be written).
    updated: int = 0
    #: Records that failed (one row each in ``record_failures``); a notice is never a failure.
    failed: int = 0
    #: Fields left alone because someone edited them by hand (protect_manual): fields, not records.
    protected: int = 0
    #: Records skipped because their opt-out checkbox is ticked.
    opted_out: int = 0
    #: Records skipped because the registry does not cover their country (a record fate, like opted_out).
    out_of_scope: int = 0
    #: Registry notices (worker.registry.outcomes.RegistryNotice.counter), one row each; these records also
    #: count in their fate.
    registry_not_found: int = 0
    registry_deleted: int = 0
    registry_inactive: int = 0
    status_unknown: int = 0
    #: Field changes sent to review (policy ``review``) instead of being written: fields, not records.
    review: int = 0
    #: Registry requests sent, retries and dead attempts included.
    registry_calls: int = 0
    #: Salesforce API calls made.
    crm_calls: int = 0

    def columns(self) -> dict[str, int]:
        """The counters by name, as a chunk stores them and a run sums them."""
        return asdict(self)


#: Every counter's name, in the order the ledger's columns and the views list them.
COUNTERS: tuple[str, ...] = tuple(f.name for f in fields(Counts))
#: The counters of calls by service (the others count records, or fields for ``protected``).
CALLS: tuple[str, ...] = ("registry_calls", "crm_calls")
