"""The planner's side of name matching: search, score, decide, and write the org numbers it may fill.

A record without a valid org number is searched by its name and country (nothing else leaves regsync), unless
it was searched under the same name before (any decision stands until the name changes). Each search is one
registry request through the connection's rate limiter and counts in the run's ``registry_calls`` and
``name_searches``. An automatic match writes the org number into the record (fill_blank: only a blank field)
and the record joins the run's chunks, so everything else syncs in the same run. A dry run searches nothing and
counts what it would search.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.backfill.options import BackfillOptions
from worker.connections.spec import ConnectionSpec
from worker.crm.objects import rules_for
from worker.crm.port import CrmClient, CrmRecord
from worker.ledger.db import session_scope
from worker.ledger.models import Run, RunMode
from worker.matching import store
from worker.matching.decide import Verdict, decide
from worker.matching.models import MatchStatus
from worker.matching.score import name_hash, rank, search_text
from worker.orgnr import SUPPORTED_COUNTRIES
from worker.registry.search import NameSearch

log = logging.getLogger(__name__)
WRITE_BATCH = 200


@dataclass(slots=True)
class MatchResult:
    """What one page's matching did: the records that now have an org number (Id → ``CC:orgnr``)."""

    keys: dict[str, str] = field(default_factory=dict)
    searched: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Asked:
    record: CrmRecord
    country: str
    name: str
    digest: str


class NameMatcher:
    """Name matching for one run's planner.

    Args:
        spec: the connection (its ``[matching]``, object and key field).
        crm: the planner's CRM client (org numbers are written with it).
        search: the registry's name search.
        dry_run: count what would be searched; search and write nothing.
    """

    def __init__(
        self,
        spec: ConnectionSpec,
        crm: CrmClient,
        search: NameSearch,
        *,
        connection_id: int,
        run_id: int,
        dry_run: bool = False,
    ) -> None:
        self.spec, self.crm, self.search = spec, crm, search
        self.connection_id, self.run_id, self.dry_run = connection_id, run_id, dry_run
        rules, matching = rules_for(spec.salesforce.object), spec.matching
        self.name_field = name_field_of(spec)
        self.postal_field = matching.postal_code_field or rules.postal_code_field
        self.city_field = matching.city_field or rules.city_field

    def fields(self) -> list[str]:
        """What the planner must also read for matching: the name, postal code and city fields."""
        return [name for name in (self.name_field, self.postal_field, self.city_field) if name]

    def match(self, records: Sequence[CrmRecord], beat: Callable[[], None] | None = None) -> MatchResult:
        """Match ``records`` (none has a valid org number); returns those that got one.

        Args:
            beat: called after each search (the planner extends its lease: a page of searches at a low registry
                rate can take longer than a lease).
        """
        result = MatchResult()
        asked = self._to_ask(records)
        if self.dry_run:
            result.searched = len(asked)
            return result
        rows, chosen = [], {}
        for item in asked:
            verdict, row = self._search_one(item)
            result.searched += 1
            if beat is not None:
                beat()
            rows.append(row)
            if verdict.status is MatchStatus.AUTO and verdict.chosen is not None:
                chosen[str(item.record["Id"])] = (item.country, verdict.chosen.candidate.org_number)
        self._write(chosen, rows, result)
        for row in rows:
            if row["status"] != MatchStatus.REVIEW.value:
                row["crm_name"] = None  # the CRM's name is kept only while a person has to look at it
        with session_scope() as session:
            store.save(session, rows)
        for row in rows:
            result.statuses[row["status"]] = result.statuses.get(row["status"], 0) + 1
        log.info("name matching: %s searches", result.searched, extra={"run_id": self.run_id})
        return result

    def _to_ask(self, records: Sequence[CrmRecord]) -> list[_Asked]:
        return to_ask(self.spec, self.connection_id, records)

    def _search_one(self, item: _Asked) -> tuple[Verdict, dict[str, Any]]:
        found = self.search.search_by_name(search_text(item.name), item.country)
        postal = _text(item.record.get(self.postal_field or ""))
        city = _text(item.record.get(self.city_field or ""))
        ranked = rank(item.name, found, postal, city)
        blank = not _text(item.record.get(self.spec.salesforce.org_number_field))
        verdict = decide(ranked, self.spec.matching, field_blank=blank)
        row = {
            "connection_id": self.connection_id,
            "run_id": self.run_id,
            "object": self.spec.salesforce.object,
            "record_id": str(item.record["Id"]),
            "country": item.country,
            "name_hash": item.digest,
            "status": verdict.status.value,
            "reason": verdict.reason,
            "crm_name": item.name[:255],  # kept only if the row ends in review (see match)
            "candidates": [scored.as_json() for scored in ranked],
            "org_number": verdict.chosen.candidate.org_number if verdict.chosen else None,
        }
        return verdict, row

    def _write(
        self, chosen: dict[str, tuple[str, str]], rows: list[dict[str, Any]], result: MatchResult
    ) -> None:
        """Write the chosen org numbers; a record whose write fails goes to review with the reason."""
        key_field = self.spec.salesforce.org_number_field
        ids = list(chosen)
        by_id = {row["record_id"]: row for row in rows}
        for start in range(0, len(ids), WRITE_BATCH):
            batch = ids[start : start + WRITE_BATCH]
            answers = self.crm.update([{"Id": rid, key_field: chosen[rid][1]} for rid in batch])
            for answer in answers:
                if answer.success:
                    country, number = chosen[answer.record_id]
                    result.keys[answer.record_id] = f"{country}:{number}"
                    continue
                row = by_id[answer.record_id]
                row.update(status=MatchStatus.REVIEW.value, org_number=None)
                row["reason"] = f"writing the org number failed ({answer.error_code}); approve to try again"


def name_field_of(spec: ConnectionSpec) -> str:
    """The company-name field a name search reads: ``[matching] name_field``, else the object's own."""
    return spec.matching.name_field or rules_for(spec.salesforce.object).name_field


def to_ask(spec: ConnectionSpec, connection_id: int, records: Sequence[CrmRecord]) -> list[_Asked]:
    """The records to search: a name and a supported country, and not searched under this name before (a
    rejected, unmatched or skipped record is asked again only once its name changes)."""
    name_field, sf = name_field_of(spec), spec.salesforce
    candidates = []
    for record in records:
        name = str(record.get(name_field) or "").strip()
        country = str(sf.country or record.get(sf.country_field or "") or "")
        if name and country.upper() in SUPPORTED_COUNTRIES:
            candidates.append(_Asked(record, country.upper(), name, name_hash(name)))
    ids = [str(item.record["Id"]) for item in candidates]
    with session_scope() as session:
        known = store.known_hashes(session, connection_id, sf.object, ids)
    return [item for item in candidates if known.get(str(item.record["Id"])) != item.digest]


def _text(value: object) -> str | None:
    return None if value is None or not str(value).strip() else str(value).strip()


def matcher_for(run: Run, spec: ConnectionSpec, crm: CrmClient, registry: object) -> NameMatcher | None:
    """The run's matcher: a full run (or backfill) of a connection with ``[matching] enabled``, else None."""
    if not spec.matching.enabled or run.mode == RunMode.CHANGES.value or not isinstance(registry, NameSearch):
        return None
    dry_run = BackfillOptions.from_run(run.options).dry_run
    return NameMatcher(spec, crm, registry, connection_id=run.connection_id, run_id=run.id, dry_run=dry_run)
