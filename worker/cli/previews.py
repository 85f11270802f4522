"""Printing a dry run's per-field preview (shared by `backfill --wait` and `runs show`).

Samples are CRM and registry values: printed for the admin who asked, never logged.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from worker.cli.common import console


def print_field_changes(changes: list[dict[str, Any]]) -> None:
    """Per field: how many records a dry run would change, and (when given) old → new samples."""
    if not changes:
        console.print("dry run: no field would change")
        return
    table = Table("field", "would change", "samples (old → new)", title="dry run: nothing was written")
    for change in changes:
        samples = Text()
        for sample in change.get("samples", []):
            samples.append(f"{sample['record_id']}: {sample['old']!r} → {sample['new']!r}\n")
        table.add_row(change["field"], str(change["count"]), samples)
    console.print(table)
