"""Escalation policy arithmetic (PagerDuty-style): which step a level is, and when the next one is due.

Level 0 is the first notice (step 1). An unacknowledged alert moves one level up at ``escalate_at``; the
policy's steps are played ``repeat + 1`` times in all, after which the alert stays at its last level.
"""

from __future__ import annotations

import datetime as dt

from worker.alerts.config import AlertsSpec, EscalationStep


def total_levels(settings: AlertsSpec) -> int:
    """How many levels the policy has (steps × (repeat + 1)); 1 without a policy, 0 without channels."""
    steps = settings.steps()
    if not steps:
        return 0
    return len(steps) * (settings.repeat + 1) if settings.escalates() else 1


def step_for(settings: AlertsSpec, level: int) -> EscalationStep | None:
    """The step notified at ``level``; None beyond the policy."""
    steps = settings.steps()
    if not steps or level >= total_levels(settings):
        return None
    return steps[level % len(steps)]


def next_escalation(settings: AlertsSpec, level: int, notified: dt.datetime) -> dt.datetime | None:
    """When an alert notified at ``level`` (at ``notified``) escalates if nobody acknowledges; None if never."""
    step = step_for(settings, level)
    if step is None or not settings.escalates() or level + 1 >= total_levels(settings):
        return None
    return notified + dt.timedelta(minutes=step.ack_timeout_minutes)


def channels_through(settings: AlertsSpec, level: int) -> list[str]:
    """Every channel notified from level 0 up to ``level`` (a recovery notice goes to all of them)."""
    names: list[str] = []
    for current in range(level + 1):
        step = step_for(settings, current)
        names += [name for name in (step.channels if step else []) if name not in names]
    return names
