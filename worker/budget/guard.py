"""The budget rule as a pure function: may a chunk start, given what regsync and the org have used today?

Two limits from the connection's ``[budget]``:

* ``max_api_share``: regsync itself may use at most this share of the org's daily API limit per UTC day
  (regsync counts its own calls; the limit comes from the last ``Sforce-Limit-Info`` seen, however old).
* ``stop_below_remaining``: the org's remaining calls (limit − used, all integrations together) must not go
  below this floor. Only a *fresh* reading counts: Salesforce's window rolls, so a reading older than
  ``recheck_after_s`` is ignored and the next chunk, which costs at most :data:`CHUNK_COST` calls, measures again.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from worker.connections.spec import BudgetSpec

#: Salesforce calls one chunk makes at most: one sObject Collections read and one collection write.
CHUNK_COST = 2


@dataclass(frozen=True, slots=True)
class ApiReading:
    """The org's daily API usage as ``Sforce-Limit-Info`` last reported it, and when (epoch seconds)."""

    used: int
    limit: int
    seen_at: float


def utc_day(now: float) -> str:
    """The UTC calendar day of an epoch time, as the budget window's name (``2024-05-31``)."""
    return dt.datetime.fromtimestamp(now, dt.UTC).date().isoformat()


def share_cap(budget: BudgetSpec, limit: int) -> int:
    """Calls regsync may make per UTC day on an org whose daily limit is ``limit``."""
    return math.floor(budget.max_api_share * limit)


def budget_verdict(
    budget: BudgetSpec, own_used_today: int, reading: ApiReading | None, now: float, cost: int = CHUNK_COST
) -> str | None:
    """None when a chunk costing ``cost`` calls may start; otherwise why not, in words for `runs show`.

    Args:
        budget: The connection's ``[budget]`` settings.
        own_used_today: Salesforce calls regsync made for this connection in the current UTC day.
        reading: The last usage reading of the org, or None when none is known (or it was reset).
        now: Epoch seconds.
        cost: Calls the chunk may make.
    """
    if reading is not None:
        cap = share_cap(budget, reading.limit)
        if own_used_today + cost > cap:
            return (
                f"regsync used {own_used_today} of its {cap} Salesforce API calls for today "
                f"(max_api_share {budget.max_api_share:g} of the org's daily {reading.limit}); "
                "it resumes after midnight UTC, or raise [budget] max_api_share and `regsync runs resume RUN`"
            )
    if reading is not None and now - reading.seen_at <= budget.recheck_after_s:
        remaining = reading.limit - reading.used
        if remaining - cost < budget.stop_below_remaining:
            return (
                f"only {remaining} of the org's {reading.limit} daily Salesforce API calls remain and this "
                f"connection stops below {budget.stop_below_remaining}; it resumes when the allowance recovers "
                "(checked every "
                f"{budget.recheck_after_s} s), or after `regsync runs resume RUN`"
            )
    return None
