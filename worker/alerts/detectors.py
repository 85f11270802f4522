"""Detectors: pure functions of (one connection's ledger state, now) that name the conditions that hold now.

A condition is identified by (connection, kind, subject): while it holds, one alert stays unresolved; when it
no longer holds, the alert resolves and a recovery notice goes out. ``detected_at`` is the ledger time at which
the condition became true (a run's finish, a slot's grace running out, the last heartbeat plus the stall
limit), never the time a detector happened to look.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worker.alerts.models import AlertKind
from worker.alerts.snapshot import ConnectionState, RunFacts, ScheduleFacts
from worker.ledger.models import RunKind, RunStatus

#: Error codes of runs that ended because a credential was refused (registry 401, Salesforce invalid_grant).
AUTH_CODES = {"REGISTRY_AUTH": "registry", "CRM_AUTH": "crm"}
MISSED_CODE = "MISSED"
OUTCOMES = frozenset({RunStatus.SUCCEEDED.value, RunStatus.PARTIALLY_FAILED.value, RunStatus.FAILED.value})
VOLUME_HISTORY = 10


@dataclass(frozen=True, slots=True)
class Condition:
    """Something wrong with a connection right now; ``details`` hold ids, codes and counts only."""

    connection_id: int | None  # None: an installation-wide (operator) condition
    kind: AlertKind
    subject: str
    detected_at: dt.datetime
    run_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[int | None, str, str]:
        return (self.connection_id, self.kind.value, self.subject)


Detector = Callable[[ConnectionState, dt.datetime], list[Condition]]


def _outcomes(state: ConnectionState) -> list[RunFacts]:
    """Runs that finished with an outcome, newest first (by finish time)."""
    done = [r for r in state.runs if r.status in OUTCOMES and r.finished_at is not None]
    return sorted(done, key=lambda r: (r.finished_at, r.id), reverse=True)


def _latest(state: ConnectionState) -> RunFacts | None:
    outcomes = _outcomes(state)
    return outcomes[0] if outcomes else None


def _counts(run: RunFacts) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "run_kind": run.kind,
        "planned": run.planned,
        "invalid": run.invalid,
        "failed": run.failed,
        "updated": run.updated,
        "error_code": run.error_code,
    }


def _condition(
    state: ConnectionState,
    kind: AlertKind,
    subject: str,
    at: dt.datetime,
    run: RunFacts | None,
    **details: Any,
) -> Condition:
    base = _counts(run) if run is not None else {}
    return Condition(state.connection_id, kind, subject, at, run.id if run else None, base | details)


def run_failed(state: ConnectionState, now: dt.datetime) -> list[Condition]:
    """The newest finished run failed (clears when a later run does not)."""
    run = _latest(state)
    if run is None or run.status != RunStatus.FAILED.value or run.finished_at is None:
        return []
    return [_condition(state, AlertKind.RUN_FAILED, "runs", run.finished_at, run)]


def failure_share(run: RunFacts) -> float:
    """(failed + invalid) / planned; 0 for a run that planned nothing."""
    return (run.failed + run.invalid) / run.planned if run.planned else 0.0


def run_partially_failed(state: ConnectionState, now: dt.datetime) -> list[Condition]:
    """The newest finished run failed for more than the threshold share of its records, but not all."""
    run = _latest(state)
    threshold = state.settings.partial_failure_threshold
    if run is None or run.status == RunStatus.FAILED.value or run.finished_at is None:
        return []
    share = failure_share(run)
    if share <= threshold:
        return []
    details = {"failure_share": round(share, 4), "threshold": threshold}
    return [_condition(state, AlertKind.RUN_PARTIALLY_FAILED, "runs", run.finished_at, run, **details)]


def _slot_missed(run: RunFacts | None, slot: dt.datetime, grace: dt.timedelta) -> bool | None:
    """True missed, False served, None skipped on purpose (concurrency policy, paused connection)."""
    if run is None:
        return True
    if run.status == RunStatus.SKIPPED.value:
        return True if run.error_code == MISSED_CODE else None
    return run.started_at is None or run.started_at > slot + grace


def run_missed(state: ConnectionState, now: dt.datetime) -> list[Condition]:
    """Per schedule: the newest slot whose grace has run out had no run (of its mode) started within the grace."""
    return [c for schedule in state.schedules for c in _schedule_missed(state, schedule, now)]


def _schedule_missed(state: ConnectionState, schedule: ScheduleFacts, now: dt.datetime) -> list[Condition]:
    deadline = now - schedule.grace
    by_slot = {
        r.scheduled_for: r
        for r in state.runs
        if r.scheduled_for is not None and r.kind != "backfill" and r.mode == schedule.mode
    }
    due = sorted({s for s in [*schedule.unhandled_slots, *by_slot] if s <= deadline})
    if not due:
        return []
    newest = due[-1]
    run = by_slot.get(newest)
    if not _slot_missed(run, newest, schedule.grace):
        return []
    missed = sum(1 for slot in due if _slot_missed(by_slot.get(slot), slot, schedule.grace))
    details = {
        "slot": newest.isoformat(),
        "grace_s": int(schedule.grace.total_seconds()),
        "missed_slots": missed,
    }
    subject = f"schedule:{schedule.schedule_id}"
    return [_condition(state, AlertKind.RUN_MISSED, subject, newest + schedule.grace, run, **details)]


def _running(state: ConnectionState) -> list[RunFacts]:
    return [r for r in state.runs if r.status == RunStatus.RUNNING.value]


#: Runs that should make progress: a queued run waits for its planner, a running one for its chunks.
_PROGRESSING = frozenset({RunStatus.QUEUED.value, RunStatus.RUNNING.value})


def run_stalled(state: ConnectionState, now: dt.datetime) -> list[Condition]:
    """A queued or running run without progress for ``stall_minutes``: no planner or chunk heartbeat (a queued run:
    none since it was queued). Clears on the next heartbeat or the run's end."""
    limit = dt.timedelta(minutes=state.settings.stall_minutes)
    found = []
    for run in (r for r in state.runs if r.status in _PROGRESSING):
        last = run.heartbeat_at or run.started_at or run.queued_at
        if now - last >= limit:
            details = {"last_heartbeat_at": last.isoformat(), "stall_minutes": state.settings.stall_minutes}
            found.append(
                _condition(state, AlertKind.RUN_STALLED, f"run:{run.id}", last + limit, run, **details)
            )
    return found


def run_overran(state: ConnectionState, now: dt.datetime) -> list[Condition]:
    """A run still running after ``max_runtime_minutes`` (separate from a slot's start grace)."""
    limit = dt.timedelta(minutes=state.settings.max_runtime_minutes)
    found = []
    for run in _running(state):
        if run.started_at is not None and now - run.started_at > limit:
            details = {"max_runtime_minutes": state.settings.max_runtime_minutes}
            at = run.started_at + limit
            found.append(_condition(state, AlertKind.RUN_OVERRAN, f"run:{run.id}", at, run, **details))
    return found


def _deviates(value: int, median: float, share: float, min_records: int) -> bool:
    gap = abs(value - median)
    return gap >= min_records and gap > share * max(median, 1.0)


def volume_anomaly(state: ConnectionState, now: dt.datetime) -> list[Condition]:
    """Records planned or updated by the newest run deviate from the median of the ten runs before it.

    Backfills are left out (they cover a chosen subset). One condition per metric (subject ``planned`` or
    ``updated``).
    """
    settings = state.settings
    runs = [r for r in _outcomes(state) if r.kind != RunKind.BACKFILL.value]
    if len(runs) < settings.volume_min_history + 1:
        return []
    newest, history = runs[0], runs[1 : 1 + VOLUME_HISTORY]
    finished = newest.finished_at
    if finished is None:
        return []
    found = []
    for metric in ("planned", "updated"):
        value = int(getattr(newest, metric))
        median = float(statistics.median(int(getattr(r, metric)) for r in history))
        if _deviates(value, median, settings.volume_share, settings.volume_min_records):
            details = {"metric": metric, "value": value, "median": median, "history": len(history)}
            found.append(_condition(state, AlertKind.VOLUME_ANOMALY, metric, finished, newest, **details))
    return found


def auth_revoked(state: ConnectionState, now: dt.datetime) -> list[Condition]:
    """A run ended (or is ending) because the registry or Salesforce refused our credential."""
    latest = _latest(state)
    candidates = [r for r in state.runs if r.status not in OUTCOMES and r.status != RunStatus.SKIPPED.value]
    candidates += [latest] if latest is not None else []
    found: dict[str, Condition] = {}
    for run in candidates:
        side = AUTH_CODES.get(run.error_code or "")
        if side is None or side in found:
            continue
        at = run.finished_at or run.heartbeat_at or run.started_at or run.queued_at
        found[side] = _condition(state, AlertKind.AUTH_REVOKED, side, at, run)
    return list(found.values())


def api_budget_low(state: ConnectionState, now: dt.datetime) -> list[Condition]:
    """A run is paused by the API budget guard, or the newest run used more than ``budget_share`` of the limit."""
    paused = [r for r in state.runs if r.status == RunStatus.PAUSED_BUDGET.value]
    if paused:
        run = paused[0]
        at = run.heartbeat_at or run.started_at or run.queued_at
        return [_condition(state, AlertKind.API_BUDGET_LOW, "budget", at, run, paused=True)]
    recent = [r for r in state.runs if r.api_limit and r.api_used_after is not None]
    if not recent:
        return []
    run = recent[0]
    share = (run.api_used_after or 0) / (run.api_limit or 1)
    if share < state.settings.budget_share:
        return []
    at = run.finished_at or run.heartbeat_at or run.started_at or run.queued_at
    details = {"paused": False, "api_used": run.api_used_after, "api_limit": run.api_limit}
    return [_condition(state, AlertKind.API_BUDGET_LOW, "budget", at, run, **details)]


DETECTORS: dict[AlertKind, Detector] = {
    AlertKind.RUN_FAILED: run_failed,
    AlertKind.RUN_PARTIALLY_FAILED: run_partially_failed,
    AlertKind.RUN_MISSED: run_missed,
    AlertKind.RUN_STALLED: run_stalled,
    AlertKind.RUN_OVERRAN: run_overran,
    AlertKind.VOLUME_ANOMALY: volume_anomaly,
    AlertKind.AUTH_REVOKED: auth_revoked,
    AlertKind.API_BUDGET_LOW: api_budget_low,
}


def detect(state: ConnectionState, now: dt.datetime) -> list[Condition]:
    """Every condition that holds for one connection at ``now``."""
    return [condition for detector in DETECTORS.values() for condition in detector(state, now)]
