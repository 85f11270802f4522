"""What each due slot becomes: a run, or a ``skipped`` run that says why (pure, tested with a frozen clock).

Catch-up after downtime: only the newest due slot may still run, and only within the starting deadline;
older due slots are recorded as ``MISSED``. Concurrency: a slot that comes while a run of the connection is
active is skipped (``forbid``), replaces it (``replace``: the active run is asked to cancel) or runs
alongside it (``allow``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from worker.scheduling.models import Concurrency

MISSED = "MISSED"
OVERLAP = "OVERLAP"


@dataclass(frozen=True, slots=True)
class SlotDecision:
    """The fate of one slot; ``cancel`` lists active runs to ask to stop when the new run starts."""

    slot: dt.datetime
    run: bool
    error_code: str | None = None
    reason: str | None = None
    cancel: tuple[int, ...] = ()


def _stamp(slot: dt.datetime) -> str:
    return slot.astimezone(dt.UTC).isoformat(timespec="minutes")


def _superseded(slot: dt.datetime, newest: dt.datetime) -> SlotDecision:
    reason = (
        f"slot {_stamp(slot)} was missed (no tick ran in time); the newer slot {_stamp(newest)} replaces it"
    )
    return SlotDecision(slot, run=False, error_code=MISSED, reason=reason)


def _newest(
    slot: dt.datetime, now: dt.datetime, deadline_s: int, policy: Concurrency, active: Sequence[int]
) -> SlotDecision:
    late_s = (now - slot).total_seconds()
    if late_s > deadline_s:
        reason = f"slot {_stamp(slot)} was missed: {int(late_s)} s late, past its starting deadline of {deadline_s} s"
        return SlotDecision(slot, run=False, error_code=MISSED, reason=reason)
    if not active or policy is Concurrency.ALLOW:
        return SlotDecision(slot, run=True)
    if policy is Concurrency.REPLACE:
        return SlotDecision(slot, run=True, cancel=tuple(active))
    ids = ", ".join(str(run_id) for run_id in active)
    reason = (
        f"run {ids} of this connection was still active at slot {_stamp(slot)} (concurrency policy forbid)"
    )
    return SlotDecision(slot, run=False, error_code=OVERLAP, reason=reason)


def decide(
    due: Sequence[dt.datetime],
    now: dt.datetime,
    *,
    starting_deadline_s: int,
    policy: Concurrency,
    active_run_ids: Sequence[int] = (),
) -> list[SlotDecision]:
    """Decide every due slot, oldest first.

    Args:
        due: Slots not dealt with yet, oldest first, none after ``now``.
        now: The tick's time.
        starting_deadline_s: How late the newest slot may still start.
        policy: The schedule's concurrency policy.
        active_run_ids: Runs of the connection that are queued or running now.

    Returns:
        One decision per slot: older ones are missed, the newest runs or is skipped.
    """
    if not due:
        return []
    *older, newest = due
    decisions = [_superseded(slot, newest) for slot in older]
    decisions.append(_newest(newest, now, starting_deadline_s, policy, active_run_ids))
    return decisions
