"""Field policies: from a CRM record and a registry Company, which fields to write (and which to leave).

Pure functions: no I/O. ``None`` from the registry never blanks a CRM value. How values are compared and hashed
is ``crm/values``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.company import Company, canonical_value
from worker.connections.spec import FieldMapping, Policy
from worker.crm.values import CrmValue, normalise, to_crm, value_hash


@dataclass(slots=True)
class RecordPlan:
    """What to do with one record: fields to change, fields left alone because someone edited them, and
    changes that wait for a person (policy ``review``)."""

    changes: dict[str, CrmValue] = field(default_factory=dict)
    protected: list[str] = field(default_factory=list)
    #: Canonical field → (the CRM's current value, the registry's value): not written, sent to review.
    review: dict[str, tuple[CrmValue, CrmValue]] = field(default_factory=dict)


def plan_record(
    record: Mapping[str, Any],
    company: Company,
    mapping: Mapping[str, FieldMapping],
    confirmed_hashes: Mapping[str, str],
) -> RecordPlan:
    """Apply each mapped field's policy.

    Args:
        record: the record's fresh CRM values by field API name.
        company: what the registry says.
        mapping: canonical field → CRM field and policy.
        confirmed_hashes: CRM field → hash of the value regsync last wrote there (for ``protect_manual``).

    A ``review`` field's change goes to ``RecordPlan.review`` (keyed by canonical field, as change events are),
    never to ``changes``.
    """
    plan = RecordPlan()
    for canonical, target in mapping.items():
        wanted = to_crm(canonical_value(company, canonical))
        if wanted is None:
            continue
        current = record.get(target.field)
        if normalise(current) == normalise(wanted):
            continue
        if target.policy is Policy.FILL_BLANK and normalise(current) is not None:
            continue
        if target.policy is Policy.PROTECT_MANUAL and _edited_by_hand(
            current, confirmed_hashes.get(target.field)
        ):
            plan.protected.append(target.field)
            continue
        if target.policy is Policy.REVIEW:
            plan.review[canonical] = (current, wanted)
            continue
        plan.changes[target.field] = wanted
    return plan


def _edited_by_hand(current: Any, last_written_hash: str | None) -> bool:
    # Never written by us: a non-blank value was typed by someone, so protect it.
    if last_written_hash is None:
        return normalise(current) is not None
    return value_hash(current) != last_written_hash
