"""Dry-run preview: what one chunk would change, per CRM field, with the first few old → new samples.

The chunk computes it here from its record plans; the ledger adds it up per run (``ledger/field_changes.add``).
Samples hold CRM and registry values: they are shown to the admin in the CLI and never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet

from worker.crm.port import CrmRecord
from worker.ledger.field_changes import MAX_SAMPLES, FieldTally
from worker.sync.policies import RecordPlan


def tally(
    records: Mapping[str, CrmRecord], plans: Mapping[str, RecordPlan], private: AbstractSet[str] = frozenset()
) -> dict[str, FieldTally]:
    """Count, per CRM field, the records whose plan changes it, keeping the first few as samples; ``private``
    records (sole proprietorships) are counted, also in ``withheld``, and never sampled."""
    out: dict[str, FieldTally] = {}
    for record_id in sorted(plans):
        for name, new in plans[record_id].changes.items():
            entry = out.setdefault(name, FieldTally())
            entry.count += 1
            if record_id in private:
                entry.withheld += 1
            elif len(entry.samples) < MAX_SAMPLES:
                entry.samples.append(
                    {"record_id": record_id, "old": records[record_id].get(name), "new": new}
                )
    return out
