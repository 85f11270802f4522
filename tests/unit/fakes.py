"""In-memory fakes of regsync's own ports (CRM, registry, dispatcher) for narrow unit tests."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from config.settings import Settings
from worker.company import Company, CompanyKey, CompanyStatus, LookupResult
from worker.connections.spec import ConnectionSpec, parse_spec
from worker.crm.port import ApiUsage, CrmClient, CrmRecord, FieldInfo, WriteResult
from worker.crm.soql import MODSTAMP_OVERLAP
from worker.infra.dispatch import Dispatcher
from worker.registry.port import RegistryProvider
from worker.sync.runtime import ClientFactory, Opened, Runtime


def counts(row: object, *names: str) -> dict[str, object]:
    """``names`` of ``row`` (a run, a report...) as a dict, so that a failed ``==`` names the field that differs."""
    return {name: getattr(row, name) for name in names}


def make_spec(**mapping_policies: str) -> ConnectionSpec:
    policies = mapping_policies or {"name": "overwrite", "status": "overwrite", "employees": "overwrite"}
    fields = {
        "name": "Name",
        "status": "Registry_Status__c",
        "employees": "NumberOfEmployees",
        "city": "BillingCity",
    }
    return parse_spec(
        {
            "name": "acme",
            "salesforce": {
                "token_url": "https://sf.example/services/oauth2/token",
                "client_id": "client",
                "org_number_field": "Org_Number__c",
                "country": "NO",
            },
            "registry": {"provider": "proff", "base_url": "https://registry.example"},
            "mapping": {
                canonical: {"field": fields[canonical], "policy": p} for canonical, p in policies.items()
            },
        }
    )


DESCRIBE = (
    FieldInfo("Id", "id", False, 18),
    FieldInfo("Org_Number__c", "string", True, 20),
    FieldInfo("Name", "string", True, 255),
    FieldInfo("Registry_Status__c", "picklist", True, 255),
    FieldInfo("NumberOfEmployees", "int", True),
    FieldInfo("BillingCity", "string", True, 40),
)


class FakeCrm:
    def __init__(self, records: Sequence[CrmRecord], fail_ids: Sequence[str] = ()) -> None:
        self.records = {r["Id"]: dict(r) for r in records}
        self.fail_ids = set(fail_ids)
        self.calls = 0
        self.usage = ApiUsage(used=100, limit=15000)
        self.writes: Counter[str] = Counter()
        self.crash_after_write = False

    def stream_records(
        self, fields: Sequence[str], where: str | None = None, order_by: str | None = None
    ) -> Iterator[CrmRecord]:
        after = where.split("'")[1] if where else ""
        for record_id in sorted(self.records):
            if record_id > after:
                yield {f: self.records[record_id].get(f) for f in fields}

    def read_by_ids(self, ids: Sequence[str], fields: Sequence[str]) -> list[CrmRecord]:
        self.calls += 1
        return [{f: self.records[i].get(f) for f in fields} for i in ids if i in self.records]

    def update(self, records: Sequence[CrmRecord]) -> list[WriteResult]:
        self.calls += 1
        results: list[WriteResult] = []
        for record in records:
            if record["Id"] in self.fail_ids:
                results.append(WriteResult(record["Id"], False, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "rule"))
                continue
            self.records[record["Id"]].update(record)
            self.writes[record["Id"]] += 1
            results.append(WriteResult(record["Id"], True))
        if self.crash_after_write:
            self.crash_after_write = False
            raise KeyboardInterrupt("simulated worker death after the PATCH")
        return results

    def modified_keys(self, key_fields: Sequence[str], since: dt.datetime | None) -> Iterator[CrmRecord]:
        """Records whose ``SystemModstamp`` (an aware datetime; a record without one is older than any watermark)
        is after ``since`` less the overlap, by stamp then Id; one call per 2,000 rows, as Salesforce's pages."""
        start = None if since is None else since - MODSTAMP_OVERLAP
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        stamped = sorted((r.get("SystemModstamp") or epoch, i) for i, r in self.records.items())
        found = [i for stamp, i in stamped if start is None or stamp > start]
        for position, record_id in enumerate(found):
            self.calls += position % 2000 == 0
            yield {f: self.records[record_id].get(f) for f in ["Id", *key_fields, "SystemModstamp"]}
        self.calls += not found

    def describe(self) -> dict[str, FieldInfo]:
        """Every field ``make_spec`` can map, as Salesforce would describe it (the run-start check reads it)."""
        return {info.name: info for info in DESCRIBE}

    def close(self) -> None:
        pass


class FakeRegistry:
    def __init__(self, companies: Sequence[Company], malformed: Sequence[str] = ()) -> None:
        self.companies = {(c.country, c.org_number): c for c in companies}
        self.malformed = set(malformed)
        self.calls = 0
        self.asked: list[CompanyKey] = []

    def lookup_many(self, keys: Sequence[CompanyKey]) -> dict[CompanyKey, LookupResult]:
        out: dict[CompanyKey, LookupResult] = {}
        for key in keys:
            self.calls += 1
            self.asked.append(key)
            if key.org_number in self.malformed:
                out[key] = LookupResult(key, error_code="REGISTRY_MALFORMED", error_message="bad shape")
                continue
            company = self.companies.get((key.country, key.org_number))
            out[key] = LookupResult(
                key,
                company
                or Company(org_number=key.org_number, country=key.country, status=CompanyStatus.NOT_FOUND),
            )
        return out

    def close(self) -> None:
        pass


class FakeDispatcher:
    def __init__(self) -> None:
        self.plans: list[int] = []
        self.chunks: list[int] = []
        self.closed: list[int] = []

    def plan(self, run_id: int) -> None:
        self.plans.append(run_id)

    def sync(self, chunk_ids: Sequence[int]) -> None:
        self.chunks.extend(chunk_ids)

    def run_closed(self, run_id: int) -> None:
        self.closed.append(run_id)


def fake_clients(runtime: Runtime, crm: FakeCrm, registry: FakeRegistry) -> ClientFactory:
    @contextmanager
    def factory(_connection_id: int, _settings: Settings) -> Iterator[Opened]:
        yield runtime, crm, registry

    return factory


def _fakes_match_ports(
    crm: FakeCrm, registry: FakeRegistry, dispatcher: FakeDispatcher
) -> tuple[CrmClient, RegistryProvider, Dispatcher]:
    """Never called: mypy checks here that each fake still has the shape of the port it stands in for."""
    return crm, registry, dispatcher
