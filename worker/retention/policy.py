"""A connection's retention policy (``[retention]`` in the connection file) and the kinds of data it ages.

Each kind has an age in days; data older than that goes in the next purge pass. Run summaries (status, times,
counts) stay longer than their details, and the audit chain is never purged by age.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

#: Longest age a policy may set (ten years).
MAX_DAYS = 3660


class PurgeKind(StrEnum):
    """What a purge pass deletes (``--kind``); each member's comment says which age applies."""

    SAMPLES = "samples"  # dry-run previews (run_field_changes): samples_days
    FAILURES = "failures"  # record failures: failures_days
    CHUNKS = "chunks"  # finished chunks (their record Ids): failures_days
    REVIEW_VALUES = "review_values"  # changes still waiting in review expire: review_values_days
    CHANGE_EVENTS = "change_events"  # decided change events: change_events_days
    ALERT_DELIVERIES = "alert_deliveries"  # delivery attempts of notices: alert_deliveries_days
    RUNS = "runs"  # finished run summaries: run_summaries_days
    WRITE_HASHES = "write_hashes"  # record_writes of records that left the CRM (no age)
    KEY_INDEX = "key_index"  # key-index entries of records that left the CRM (no age)


class RetentionSpec(BaseModel):
    """``[retention]``: days each kind of data is kept (defaults: a yearly audit still finds the run summaries)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    samples_days: int = Field(default=7, ge=1, le=MAX_DAYS, description="Dry-run samples (CRM values).")
    failures_days: int = Field(default=90, ge=1, le=MAX_DAYS, description="Record failures and chunks.")
    change_events_days: int = Field(default=90, ge=1, le=MAX_DAYS, description="Change events.")
    review_values_days: int = Field(
        default=30, ge=1, le=MAX_DAYS, description="Changes waiting in review expire (values dropped)."
    )
    alert_deliveries_days: int = Field(default=90, ge=1, le=MAX_DAYS, description="Notice delivery attempts.")
    run_summaries_days: int = Field(default=400, ge=1, le=MAX_DAYS, description="Run summaries.")

    def age(self, kind: PurgeKind) -> dt.timedelta | None:
        """How long ``kind`` is kept; None for a kind purged by another rule than age."""
        days = {
            PurgeKind.SAMPLES: self.samples_days,
            PurgeKind.FAILURES: self.failures_days,
            PurgeKind.CHUNKS: self.failures_days,
            PurgeKind.CHANGE_EVENTS: self.change_events_days,
            PurgeKind.REVIEW_VALUES: self.review_values_days,
            PurgeKind.ALERT_DELIVERIES: self.alert_deliveries_days,
            PurgeKind.RUNS: self.run_summaries_days,
        }.get(kind)
        return None if days is None else dt.timedelta(days=days)

    def cutoff(
        self, kind: PurgeKind, now: dt.datetime, older_than: dt.timedelta | None
    ) -> dt.datetime | None:
        """The instant before which ``kind`` goes: the policy's age, or ``older_than`` (an admin's purge).

        Run summaries never go younger than the policy says: a yearly audit needs them whatever a purge asks.
        """
        age = self.age(kind)
        if age is None:
            return None
        if older_than is None:
            return now - age
        return now - (max(age, older_than) if kind is PurgeKind.RUNS else older_than)
