"""Remove one value from the ledger's free-form columns (JSON lists and mappings, error texts).

Rows are found by their text (cheap on both databases) and rewritten in Python: a list loses the elements that
hold the value, a string that holds it becomes ``ERASED``. Sealed (encrypted) columns cannot be searched by
text, so ``run_field_changes`` samples are read and filtered instead (there are few: a handful per dry run).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import String, cast, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from worker.alerts.models import Alert, AlertDelivery
from worker.changes.models import Watermark
from worker.ledger.backfill_models import RunFieldChange
from worker.ledger.models import Chunk, Run

ERASED = "[erased]"

#: Free-form columns that may quote a record Id or an org number.
FREE_FORM: tuple[InstrumentedAttribute[Any], ...] = (
    Run.options,
    Run.error,
    Chunk.record_ids,
    Chunk.org_keys,
    Chunk.error,
    Alert.details,
    AlertDelivery.error,
    Watermark.details,
)


def holds(value: Any, needles: frozenset[str]) -> bool:
    if isinstance(value, dict):
        return any(holds(v, needles) or holds(k, needles) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(holds(v, needles) for v in value)
    return value is not None and any(n in str(value) for n in needles)


def without(value: Any, needles: frozenset[str]) -> Any:
    """``value`` with every trace of ``needles`` removed (list elements dropped, strings replaced)."""
    if isinstance(value, dict):
        return {k: without(v, needles) for k, v in value.items() if not holds(k, needles)}
    if isinstance(value, list):
        return [without(v, needles) for v in value if not holds(v, needles)]
    if isinstance(value, str) and holds(value, needles):
        return ERASED
    return value


def scrub(session: Session, needles: Iterable[str]) -> int:
    """Remove ``needles`` from every free-form column and from dry-run samples; returns rows rewritten."""
    found = frozenset(n for n in needles if n)
    if not found:
        return 0
    return sum(_scrub_column(session, column, found) for column in FREE_FORM) + _scrub_samples(session, found)


def _scrub_column(session: Session, column: InstrumentedAttribute[Any], needles: frozenset[str]) -> int:
    model = column.class_
    text = cast(column, String)
    rows = list(
        session.scalars(select(model).where(or_(*(text.contains(n, autoescape=True) for n in needles))))
    )
    for row in rows:
        setattr(row, column.key, without(getattr(row, column.key), needles))
    session.flush()
    return len(rows)


def _scrub_samples(session: Session, needles: frozenset[str]) -> int:
    changed = 0
    for row in session.scalars(select(RunFieldChange).execution_options(yield_per=500)):
        if holds(row.samples, needles):
            row.samples = without(row.samples, needles)
            changed += 1
    session.flush()
    return changed
