"""Registry fidelity through whole runs: the real planner and chunk syncs, the real clients over TLS against the
sandbox registry (which renders PROTOCOLS.md shapes), the sandbox Salesforce, PostgreSQL and Redis.

- brreg asks each org number exactly once per run, deleted and missing units included (issue 10, acceptance 3);
- a Proff listing without ``status`` is never written as ``active`` (issue 10, "What was found" 3);
- Proff's sole-proprietorship listings name a person (``personRoles``, ``contactPerson``, birth dates): none of
  it reaches the ledger or any log line, DEBUG included.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.inprocess_runs import (
    ListDispatcher,
    install_connection,
    registry_numbers,
    start_run,
    sync_all,
    use_world,
    view,
)
from tests.integration.privacy_scan import found_in, ledger_text, person_values
from tests.unit.test_protocol_contracts import example
from worker.company import CompanyStatus
from worker.errors import InvalidOrgNumber
from worker.orgnr import normalise
from worker.sandbox.dataset_words import SOLE_PROPRIETOR_FORMS
from worker.sandbox.stack import Stack, sandbox_stack

pytestmark = pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)

UNKNOWN_NO = ("974760673", "985399077")  # valid checksums, unknown to the sandbox
ENK_EXAMPLE = "924880155"  # PROTOCOLS.md 1.3


def run_all(stack: Stack, data: dict[str, object]) -> int:
    """Install the connection, plan a run and sync every chunk (4 at once); returns the run id."""
    dispatch = ListDispatcher()
    run_id = start_run(install_connection(stack, data), dispatch)
    assert set(sync_all(dispatch.take_chunks(), threads=4)) == {"done"}
    return run_id


def valid_numbers(stack: Stack) -> set[str]:
    return {n for n in map(org_number, stack.salesforce.accounts.values()) if n is not None}


def account(stack: Stack, record_id: str) -> dict[str, object]:
    return next(a for a in stack.dataset.accounts if a["Id"] == record_id)


def org_number(account: dict[str, object]) -> str | None:
    try:
        return normalise(str(account["BillingCountryCode"]), str(account["Org_Number__c"]))
    except InvalidOrgNumber:
        return None


def matching_accounts(stack: Stack, count: int) -> list[str]:
    return [a["Id"] for a in stack.dataset.accounts if stack.dataset.kinds[a["Id"]] == "match"][:count]


def test_brreg_run_fetches_each_org_number_exactly_once_with_missing_and_deleted_units(
    env: object, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sandbox_stack(tmp_path, 300, dissolved_share=0.1, duplicate_share=0.1) as stack:
        use_world(monkeypatch, stack, redis_url)
        unknown_ids, removed_ids = matching_accounts(stack, 4)[:2], matching_accounts(stack, 4)[2:]
        for record_id, number in zip(unknown_ids, UNKNOWN_NO, strict=True):
            stack.salesforce.edit(record_id, Org_Number__c=number)
        removed = {str(org_number(account(stack, record_id))) for record_id in removed_ids}
        for number in removed:
            stack.registry.remove(number)
        deleted = {c.org_number for c in stack.dataset.companies if c.status is CompanyStatus.DELETED}
        data = stack.spec_data("once", "brreg", requests_per_second=1000, burst=50)
        data["sync"] = {"chunk_size": 50}

        run = view(run_all(stack, data))
        requests = stack.registry.requests
        crm = stack.salesforce.accounts
        expected = valid_numbers(stack)

    asked = Counter(registry_numbers(requests))
    in_batches = Counter(registry_numbers([r for r in requests if "organisasjonsnummer" in r.query]))
    assert [number for number, times in asked.items() if times > 1] == []  # no repeats
    assert set(asked) == expected and not set(UNKNOWN_NO) - set(asked)
    assert deleted & expected and deleted & expected <= set(in_batches)  # deleted units came in the batches
    assert set(UNKNOWN_NO) | removed <= set(in_batches)  # missing ones were asked in a batch, never again
    assert run["registry_calls"] == len(requests) < len(expected) / 10
    for record_id in unknown_ids + removed_ids:
        assert crm[record_id]["Registry_Status__c"] == "not_found"
    refused = set(stack.validation_failures)  # the sandbox's "validation rule" refuses these writes
    gone = [a for a in crm.values() if org_number(a) in deleted and a["Id"] not in refused]
    assert gone and {a["Registry_Status__c"] for a in gone} == {"deleted"}


def test_proff_run_never_writes_active_for_a_listing_without_status(
    env: object, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sandbox_stack(tmp_path, 60, countries=("NO", "SE"), invalid_share=0.0) as stack:
        use_world(monkeypatch, stack, redis_url)
        chosen = matching_accounts(stack, 5)
        for record_id in chosen:
            company = stack.dataset.by_org_number[str(org_number(account(stack, record_id)))]
            stack.registry.put(
                company.model_copy(update={"status": CompanyStatus.UNKNOWN, "name": "Renamed AS"})
            )
            stack.salesforce.edit(record_id, Registry_Status__c="bankrupt")
        run_all(stack, stack.spec_data("nostatus", "proff", requests_per_second=1000, burst=50))
        crm = stack.salesforce.accounts

    for record_id in chosen:
        # Never "active". UNKNOWN is not written at all once canonical_value leaves it out (issue 10 contract).
        assert crm[record_id]["Registry_Status__c"] != "active"
        assert crm[record_id]["Name"] == "Renamed AS"  # the other mapped fields still sync


def log_text(records: list[logging.LogRecord]) -> str:
    return "\n".join(json.dumps({**r.__dict__, "message": r.getMessage()}, default=str) for r in records)


def test_proff_enk_listings_leave_no_personal_data_in_ledger_or_logs(
    env: object,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with sandbox_stack(tmp_path, 400, countries=("NO", "SE", "DK"), invalid_share=0.0) as stack:
        use_world(monkeypatch, stack, redis_url)
        enk_id = matching_accounts(stack, 1)[0]
        stack.salesforce.edit(enk_id, Org_Number__c=ENK_EXAMPLE, BillingCountryCode="NO")
        stack.registry.serve_proff_body("NO", ENK_EXAMPLE, example("proff_register_company_enk.json"))
        sole = [c for c in stack.dataset.companies if c.legal_form in SOLE_PROPRIETOR_FORMS]
        stack.registry.mask(sole[0].org_number)
        with caplog.at_level(logging.DEBUG):
            run_id = run_all(stack, stack.spec_data("privacy", "proff", requests_per_second=1000, burst=50))
        crm = stack.salesforce.accounts
        people = person_values(stack.dataset) | {"Kari Nordmann", "07031988", "3100452", "persons/business"}
        stored = ledger_text(env.database_url)  # type: ignore[attr-defined]

    run = view(run_id)
    assert run["status"] in ("succeeded", "partially_failed") and run["planned"] == 400 and len(sole) >= 10
    assert crm[enk_id]["Name"] == "KARI NORDMANN DESIGN"  # the ENK example went through the run
    assert crm[enk_id]["Industry_Code__c"] == "62.010"
    logs = log_text(caplog.records)
    assert "registry GET /api/companies/register/NO/924880155" in logs  # DEBUG was captured
    assert found_in(logs, people) == []
    assert found_in(stored, people) == []
    assert found_in(json.dumps(crm, default=str), people) == []
