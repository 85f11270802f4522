"""How many name searches a run of a selection would make, for ``regsync backfill --estimate``.

The records are read as the planner reads them (Id order, the same fields), and counted by the planner's own
rules: not opted out, no valid org number, a name and a supported country, and not searched under this name
before (a rejected, unmatched or skipped record is not searched again until its name changes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from worker.backfill.options import Selection
from worker.connections.spec import ConnectionSpec
from worker.crm.port import CrmClient, CrmRecord
from worker.errors import InvalidOrgNumber
from worker.matching.matcher import name_field_of, to_ask
from worker.orgnr import normalise

#: Records whose ledger rows are looked up at once.
BATCH = 2000


def name_searches(spec: ConnectionSpec, connection_id: int, crm: CrmClient, selection: Selection) -> int:
    """Records of ``selection`` a run would search by name (0 unless ``[matching] enabled``).

    Reading them costs Salesforce query calls (``crm.calls`` counts them).
    """
    if not spec.matching.enabled:
        return 0
    total, batch = 0, []
    for record in _unkeyed(spec, _records(spec, crm, selection)):
        batch.append(record)
        if len(batch) == BATCH:
            total, batch = total + len(to_ask(spec, connection_id, batch)), []
    return total + (len(to_ask(spec, connection_id, batch)) if batch else 0)


def _records(spec: ConnectionSpec, crm: CrmClient, selection: Selection) -> Iterator[CrmRecord]:
    sf = spec.salesforce
    optional = [sf.country_field, sf.opt_out_field, name_field_of(spec)]
    fields = list(dict.fromkeys(["Id", sf.org_number_field, *(f for f in optional if f)]))
    for where in selection.queries(None):
        yield from crm.stream_records(fields, where=where, order_by="Id")


def _unkeyed(spec: ConnectionSpec, records: Iterable[CrmRecord]) -> Iterator[CrmRecord]:
    """The records the planner would hand to name matching: not opted out, without a valid org number."""
    sf = spec.salesforce
    for record in records:
        if sf.opt_out_field and record.get(sf.opt_out_field) is True:
            continue
        country, raw = sf.country or record.get(sf.country_field or ""), record.get(sf.org_number_field)
        try:
            normalise(None if country is None else str(country), None if raw is None else str(raw))
        except InvalidOrgNumber:
            yield record
