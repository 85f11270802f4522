"""Dry-run previews: per CRM field, how many records would change, with up to three old → new samples.

Each chunk of a dry run tallies its would-be changes (``worker.sync.preview.tally``) and adds them in its finish
transaction (``add``). Samples hold CRM and registry values (see ``backfill_models``): they are shown to the admin in
the CLI and never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.ledger.backfill_models import RunFieldChange

#: Examples kept per field.
MAX_SAMPLES = 3


@dataclass(slots=True)
class FieldTally:
    """Would-be changes of one field in one chunk."""

    count: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)
    withheld: int = 0  # sole proprietorships among ``count``: never sampled


def add(session: Session, run_id: int, tallies: Mapping[str, FieldTally]) -> None:
    """Add one chunk's tallies to the run's rows.

    Called after the run row was updated in the same transaction: that row lock serialises the chunks of one
    run, so reading and then inserting or updating a field's row cannot race with another chunk.
    """
    if not tallies:
        return
    rows = {
        row.field: row
        for row in session.execute(
            select(RunFieldChange).where(
                RunFieldChange.run_id == run_id, RunFieldChange.field.in_(list(tallies))
            )
        ).scalars()
    }
    for name in sorted(tallies):
        entry, row = tallies[name], rows.get(name)
        if row is None:
            session.add(
                RunFieldChange(
                    run_id=run_id,
                    field=name,
                    count=entry.count,
                    samples=entry.samples[:MAX_SAMPLES],
                    withheld=entry.withheld,
                )
            )
            continue
        samples = (list(row.samples or []) + entry.samples)[:MAX_SAMPLES]
        session.execute(
            update(RunFieldChange)
            .where(RunFieldChange.id == row.id)
            .values(
                count=RunFieldChange.count + entry.count,
                samples=samples,
                withheld=RunFieldChange.withheld + entry.withheld,
            )
        )
    session.flush()


def field_changes(session: Session, run_id: int, *, samples: bool = False) -> list[dict[str, Any]]:
    """A run's per-field counts, largest first; ``samples`` only on request (they hold CRM values)."""
    query = select(RunFieldChange).where(RunFieldChange.run_id == run_id)
    rows = sorted(session.execute(query).scalars(), key=lambda row: (-row.count, row.field))
    return [
        {"field": row.field, "count": row.count, **({"samples": list(row.samples or [])} if samples else {})}
        for row in rows
    ]
