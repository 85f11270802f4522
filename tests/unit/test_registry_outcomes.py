"""Registry outcomes in a run: notices (not found, deleted, inactive, status unknown) and the out-of-scope skip.

Chunk sync on a SQLite ledger with fakes of our own ports: each outcome has its counter, notices are listed with
the failures but are not failures, and planned = invalid + opted_out + out_of_scope + unchanged + updated + failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from config.settings import Settings
from tests.unit import test_sync_core as core
from tests.unit.fakes import FakeCrm, FakeRegistry
from tests.unit.test_sync_core import ORGS, _account, _company, _run_all, _setup
from worker.backfill.options import failed_record_ids
from worker.company import CompanyKey, CompanyStatus, LookupResult
from worker.ledger import db
from worker.ledger.models import Chunk, Run
from worker.ledger.views import RECORD_FATES, list_failures, show_run
from worker.registry.lookup import UNSUPPORTED_COUNTRY
from worker.registry.outcomes import NOTICE_CODES, RegistryNotice

ledger = core.ledger  # the SQLite ledger fixture

#: More valid Norwegian org numbers (mod 11) than test_sync_core's five.
MORE = ["910747711", "937052766", "971524960", "982463718"]


def _outside_the_registry(registry: FakeRegistry, org_numbers: Sequence[str]) -> None:
    """The registry answers REGISTRY_UNSUPPORTED_COUNTRY for these numbers, as one for other countries would."""
    inner = registry.lookup_many

    def lookup_many(keys: Sequence[CompanyKey]) -> dict[CompanyKey, LookupResult]:
        out = inner([key for key in keys if key.org_number not in org_numbers])
        for key in keys:
            if key.org_number in org_numbers:
                out[key] = LookupResult(key, error_code=UNSUPPORTED_COUNTRY, error_message="not covered")
        return out

    registry.lookup_many = lookup_many  # type: ignore[method-assign]


def _world(ledger: str, fail_ids: Sequence[str] = ()) -> tuple[int, FakeCrm, dict[str, Any]]:
    """Records 1..9: unchanged, not found, deleted, inactive, bankrupt, unknown status, out of scope, invalid,
    and deleted but refused by Salesforce."""
    companies = [
        _company(ORGS[0], "Same AS"),
        _company(ORGS[2], "Gone AS", CompanyStatus.DELETED),
        _company(ORGS[3], "Sleepy AS", CompanyStatus.INACTIVE),
        _company(ORGS[4], "Broke AS", CompanyStatus.BANKRUPT),
        _company(MORE[0], "Mystery AS", CompanyStatus.UNKNOWN),
        _company(MORE[2], "Gone Too AS", CompanyStatus.DELETED),
    ]
    records = [
        _account(1, ORGS[0], "Same AS"),
        _account(2, ORGS[1]),  # the registry does not know it
        _account(3, ORGS[2], "Gone AS"),
        _account(4, ORGS[3], "Sleepy AS"),
        _account(5, ORGS[4], "Broke AS"),
        _account(6, MORE[0], "Old name", status="active"),
        _account(7, MORE[1]),  # a country this registry does not cover
        _account(8, "123456789"),  # invalid checksum
        _account(9, MORE[2], "Gone Too AS"),
    ]
    run_id, crm, registry, clients = _setup(records, companies, fail_ids=fail_ids)
    _outside_the_registry(registry, [MORE[1]])
    _run_all(run_id, clients, Settings(database_url=ledger))
    with db.session_scope() as session:
        return run_id, crm, show_run(session, run_id)


def _rid(i: int) -> str:
    return f"001{i:015d}"


def test_each_registry_outcome_has_its_own_count_and_none_is_a_failure(ledger: str) -> None:
    _run_id, _crm, view = _world(ledger, fail_ids=[_rid(9)])

    counts = {key: view[key] for key in ("registry_not_found", "registry_deleted", "registry_inactive")}
    assert counts == {"registry_not_found": 1, "registry_deleted": 2, "registry_inactive": 2}
    assert (view["status_unknown"], view["out_of_scope"], view["invalid"]) == (1, 1, 1)
    assert view["failed"] == 1  # only record 9's refused write; no notice and no out-of-scope record
    assert (view["unchanged"], view["updated"], view["fetched"]) == (1, 5, 7)


def test_counts_equal_what_happened_every_planned_record_has_one_fate(ledger: str) -> None:
    _run_id, _crm, view = _world(ledger, fail_ids=[_rid(9)])

    assert view["planned"] == 9 == sum(view[fate] for fate in RECORD_FATES)
    assert view["not_processed"] == 0
    assert view["fetched"] == view["unchanged"] + view["updated"] + view["failed"]
    noticed = sum(view[notice.counter] for notice in RegistryNotice)
    assert noticed == 6 <= view["fetched"]  # a notice is also counted in its record's fate


def test_chunk_counters_sum_to_the_run_counters(ledger: str) -> None:
    run_id, _crm, view = _world(ledger)

    with db.session_scope() as session:
        chunk = session.execute(select(Chunk).where(Chunk.run_id == run_id)).scalar_one()
        run = session.get(Run, run_id)
        assert run is not None
        for name in ("out_of_scope", "registry_not_found", "registry_deleted", "registry_inactive"):
            assert getattr(chunk, name) == getattr(run, name) == view[name] > 0
        assert chunk.status_unknown == run.status_unknown == 1


def test_notices_are_listed_by_code_and_the_status_is_still_written(ledger: str) -> None:
    run_id, crm, view = _world(ledger)

    with db.session_scope() as session:
        rows = list_failures(session, run_id, limit=100)
        deleted = list_failures(session, run_id, codes=["REGISTRY_DELETED"])
    by_record = {row["record_id"]: (row["error_code"], row["notice"]) for row in rows}
    assert by_record == {
        _rid(2): ("REGISTRY_NOT_FOUND", True),
        _rid(3): ("REGISTRY_DELETED", True),
        _rid(4): ("REGISTRY_INACTIVE", True),
        _rid(5): ("REGISTRY_INACTIVE", True),
        _rid(6): ("REGISTRY_STATUS_UNKNOWN", True),
        _rid(8): ("ORGNR_INVALID", False),
        _rid(9): ("REGISTRY_DELETED", True),
    }
    assert {row["record_id"] for row in deleted} == {_rid(3), _rid(9)}
    statuses = {i: crm.records[_rid(i)]["Registry_Status__c"] for i in (2, 3, 4, 5)}
    assert statuses == {2: "not_found", 3: "deleted", 4: "inactive", 5: "bankrupt"}
    assert (view["status"], view["failed"]) == ("partially_failed", 0)  # the invalid record, not the notices


def test_unknown_status_leaves_the_status_field_alone_and_syncs_the_rest(ledger: str) -> None:
    _run_id, crm, _view = _world(ledger)

    record = crm.records[_rid(6)]
    assert (record["Registry_Status__c"], record["Name"]) == ("active", "Mystery AS")


def test_out_of_scope_record_is_skipped_not_failed_and_never_written(ledger: str) -> None:
    run_id, crm, _view = _world(ledger)

    with db.session_scope() as session:
        codes = {row["error_code"] for row in list_failures(session, run_id, limit=100)}
    assert UNSUPPORTED_COUNTRY not in codes
    assert crm.writes[_rid(7)] == 0


def test_a_refused_write_is_a_failure_row_and_still_counts_its_notice(ledger: str) -> None:
    run_id, crm, view = _world(ledger, fail_ids=[_rid(9)])

    with db.session_scope() as session:
        refused = list_failures(session, run_id, codes=["FIELD_CUSTOM_VALIDATION_EXCEPTION"])
        deleted = list_failures(session, run_id, codes=["REGISTRY_DELETED"])
    assert [(r["record_id"], r["notice"]) for r in refused] == [(_rid(9), False)]
    assert [r["record_id"] for r in deleted] == [_rid(3)]  # one row per record: the failure wins
    assert view["registry_deleted"] == 2 and view["failed"] == 1
    assert crm.writes[_rid(9)] == 0


def test_only_failed_reruns_failures_not_notices(ledger: str) -> None:
    run_id, _crm, _view = _world(ledger, fail_ids=[_rid(9)])

    with db.session_scope() as session:
        run = session.get(Run, run_id)
        assert run is not None
        assert sorted(failed_record_ids(session, run_id, run.connection_id)) == [_rid(8), _rid(9)]


def test_only_notices_means_the_run_succeeded(ledger: str) -> None:
    companies = [_company(ORGS[0], "Gone AS", CompanyStatus.DELETED)]
    run_id, _crm, _registry, clients = _setup([_account(1, ORGS[0]), _account(2, ORGS[1])], companies)
    _run_all(run_id, clients, Settings(database_url=ledger))

    with db.session_scope() as session:
        view = show_run(session, run_id)
    assert (view["status"], view["failed"], view["registry_deleted"], view["registry_not_found"]) == (
        "succeeded",
        0,
        1,
        1,
    )


def test_notice_codes_are_the_contract_codes() -> None:
    assert {
        "REGISTRY_NOT_FOUND",
        "REGISTRY_DELETED",
        "REGISTRY_INACTIVE",
        "REGISTRY_STATUS_UNKNOWN",
    } == NOTICE_CODES
    assert [n.counter for n in RegistryNotice] == [
        "registry_not_found",
        "registry_deleted",
        "registry_inactive",
        "status_unknown",
    ]
