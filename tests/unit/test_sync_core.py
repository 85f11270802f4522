"""Planner and chunk sync on a SQLite ledger with fakes of our own CRM/registry ports."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from config.settings import Settings, reset_settings
from tests.unit.fakes import FakeCrm, FakeDispatcher, FakeRegistry, counts, fake_clients, make_spec
from worker.company import Company, CompanyKey, CompanyStatus, LookupResult
from worker.crm.port import CrmRecord
from worker.ledger import db, runs
from worker.ledger.models import Base, Chunk, Connection, RecordFailure, Run, RunKind
from worker.sync.chunk import sync_chunk
from worker.sync.plan import plan_run
from worker.sync.runtime import ClientFactory, Runtime

# Valid Norwegian org numbers (mod 11).
ORGS = ["923609016", "974760673", "981276957", "914778271", "915442730"]


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    monkeypatch.setenv("REGSYNC_DATABASE_URL", url)
    reset_settings()
    db.reset_engines()
    Base.metadata.create_all(db.get_engine())
    yield url
    db.reset_engines()
    reset_settings()


def _setup(
    records: list[CrmRecord], companies: list[Company], fail_ids: Sequence[str] = ()
) -> tuple[int, FakeCrm, FakeRegistry, ClientFactory]:
    spec = make_spec()
    with db.session_scope() as session:
        spec_json = spec.model_dump(mode="json")
        digest = hashlib.sha256(json.dumps(spec_json, sort_keys=True).encode()).hexdigest()
        connection = Connection(name="acme", spec=spec_json, spec_hash=digest)
        session.add(connection)
        session.flush()
        run = runs.create_run(session, connection.id, kind=RunKind.MANUAL, triggered_by="test")
        ids = (connection.id, run.id)
    runtime = Runtime(ids[0], "acme", spec, "sf-secret", "reg-token")
    crm, registry = FakeCrm(records, fail_ids), FakeRegistry(companies)
    return ids[1], crm, registry, fake_clients(runtime, crm, registry)


def _run_all(run_id: int, clients: ClientFactory, settings: Settings) -> FakeDispatcher:
    dispatch = FakeDispatcher()
    assert plan_run(run_id, dispatch, settings=settings, clients=clients) == "planned"
    for chunk_id in dispatch.chunks:
        sync_chunk(chunk_id, settings=settings, clients=clients)
    return dispatch


def _account(i: int, org: str, name: str = "Old name", status: str | None = "active") -> CrmRecord:
    return {
        "Id": f"001{i:015d}",
        "Org_Number__c": org,
        "Name": name,
        "Registry_Status__c": status,
        "NumberOfEmployees": 10,
    }


def _company(org: str, name: str, status: CompanyStatus = CompanyStatus.ACTIVE) -> Company:
    return Company(org_number=org, country="NO", name=name, status=status, employees=10)


def test_run_updates_changed_records_and_counts_add_up(ledger: str) -> None:
    companies = [_company(ORGS[0], "Equinor ASA"), _company(ORGS[1], "DNB", CompanyStatus.DISSOLVED)]
    records = [
        _account(1, ORGS[0], "Equinor ASA"),  # unchanged
        _account(2, ORGS[1], "DNB"),  # status changes to dissolved
        _account(3, "123456789"),  # invalid checksum
        _account(4, ORGS[2]),  # not in the registry → status not_found, name kept
    ]
    run_id, crm, registry, clients = _setup(records, companies)
    settings = Settings(database_url=ledger)
    _run_all(run_id, clients, settings)
    with db.session_scope() as session:
        run = session.get_one(Run, run_id)
        assert counts(run, "status", "planned", "invalid", "unchanged", "updated", "failed") == {
            "status": "partially_failed",
            "planned": 4,
            "invalid": 1,
            "unchanged": 1,
            "updated": 2,
            "failed": 0,
        }
        assert counts(run, "registry_inactive", "registry_not_found") == {  # notices, not failures
            "registry_inactive": 1,
            "registry_not_found": 1,
        }
        rows = session.execute(select(RecordFailure.record_id, RecordFailure.error_code)).all()
    assert sorted(rows) == [
        ("001000000000000002", "REGISTRY_INACTIVE"),
        ("001000000000000003", "ORGNR_INVALID"),
        ("001000000000000004", "REGISTRY_NOT_FOUND"),
    ]
    assert crm.records["001000000000000002"]["Registry_Status__c"] == "dissolved"
    assert crm.records["001000000000000004"]["Name"] == "Old name"  # never blanked out
    assert crm.records["001000000000000004"]["Registry_Status__c"] == "not_found"
    assert crm.writes["001000000000000001"] == 0
    assert "123456789" not in {k.org_number for k in registry.asked}


def test_chunks_are_200_records_and_duplicates_in_a_chunk_are_fetched_once(ledger: str) -> None:
    records = [_account(i, ORGS[i % 2], "Same") for i in range(450)]
    companies = [_company(ORGS[0], "Same"), _company(ORGS[1], "Same")]
    run_id, _crm, registry, clients = _setup(records, companies)
    dispatch = _run_all(run_id, clients, Settings(database_url=ledger))
    assert len(dispatch.chunks) == 3
    with db.session_scope() as session:
        sizes = sorted(len(c.record_ids) for c in session.execute(select(Chunk)).scalars())
        run = session.get_one(Run, run_id)
    assert sizes == [50, 200, 200]
    assert (
        registry.calls == 2
    )  # two unique org numbers, each fetched once per run (worker.sync.company_cache)
    assert counts(run, "status", "unchanged", "registry_calls") == {
        "status": "succeeded",
        "unchanged": 450,
        "registry_calls": 2,
    }


def test_per_record_write_failure_is_recorded_and_others_written(ledger: str) -> None:
    records = [_account(1, ORGS[0]), _account(2, ORGS[1])]
    companies = [_company(ORGS[0], "A AS"), _company(ORGS[1], "B AS")]
    run_id, _crm, _registry, clients = _setup(records, companies, fail_ids=["001000000000000002"])
    _run_all(run_id, clients, Settings(database_url=ledger))
    with db.session_scope() as session:
        run = session.get_one(Run, run_id)
        failure = session.execute(select(RecordFailure)).scalar_one()
    assert counts(run, "status", "updated", "failed") == {
        "status": "partially_failed",
        "updated": 1,
        "failed": 1,
    }
    assert (failure.record_id, failure.error_code) == (
        "001000000000000002",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    )


def test_redelivered_chunk_after_crash_does_not_write_twice_and_counts_exactly(ledger: str) -> None:
    records = [_account(i, ORGS[i % 3]) for i in range(5)]
    companies = [_company(o, f"Company {o}") for o in ORGS[:3]]
    run_id, crm, _registry, clients = _setup(records, companies)
    settings = Settings(database_url=ledger, chunk_lease_s=10)
    dispatch = FakeDispatcher()
    plan_run(run_id, dispatch, settings=settings, clients=clients)
    crm.crash_after_write = True
    with pytest.raises(KeyboardInterrupt):  # the worker "dies" after Salesforce accepted the PATCH
        sync_chunk(dispatch.chunks[0], settings=settings, clients=clients)
    # Redelivery while the dead attempt still holds the lease: not claimable.
    assert sync_chunk(dispatch.chunks[0], settings=settings, clients=clients) == "not_claimed"
    with db.session_scope() as session:  # the lease runs out
        chunk = session.get_one(Chunk, dispatch.chunks[0])
        assert chunk.lease_until is not None
        chunk.lease_until = chunk.lease_until.replace(year=2000)
    assert sync_chunk(dispatch.chunks[0], settings=settings, clients=clients) == "done"
    with db.session_scope() as session:
        run = session.get_one(Run, run_id)
    assert max(crm.writes.values()) == 1
    assert counts(run, "status", "updated", "unchanged", "failed") == {
        "status": "succeeded",
        "updated": 5,
        "unchanged": 0,
        "failed": 0,
    }


def test_registry_auth_error_fails_the_run_and_drops_remaining_chunks(
    ledger: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.errors import RegistryAuthError

    records = [_account(i, ORGS[0]) for i in range(401)]
    run_id, crm, registry, clients = _setup(records, [_company(ORGS[0], "X")])

    def reject(_keys: object) -> dict[CompanyKey, LookupResult]:
        raise RegistryAuthError()

    monkeypatch.setattr(registry, "lookup_many", reject)
    _run_all(run_id, clients, Settings(database_url=ledger))
    with db.session_scope() as session:
        run = session.get_one(Run, run_id)
        statuses = sorted(c.status for c in session.execute(select(Chunk)).scalars())
    assert run.status == "failed"
    assert run.error is not None and "registry token rejected" in run.error
    assert statuses == ["cancelled", "cancelled", "failed"]
    assert sum(crm.writes.values()) == 0


def test_the_chunk_that_closes_the_run_tells_its_dispatcher_once(ledger: str) -> None:
    run_id, _crm, _registry, clients = _setup(
        [_account(1, ORGS[0], "Equinor ASA")], [_company(ORGS[0], "Equinor")]
    )
    settings = Settings(database_url=ledger)
    dispatch = FakeDispatcher()
    assert plan_run(run_id, dispatch, settings=settings, clients=clients) == "planned"
    assert dispatch.closed == []
    for chunk_id in dispatch.chunks:
        sync_chunk(chunk_id, settings=settings, clients=clients, dispatch=dispatch)
    assert dispatch.closed == [run_id]
