"""Issue 10, acceptance 5 (second half): a registry value a restricted picklist does not list is a per-record
failure ``VALUE_DOES_NOT_FIT``, caught before any write: no PATCH body the sandbox org received carries it.

A real run (planner + chunks in this process, real SalesforceClient and Proff client over TLS) of 600 sandbox
Accounts after an admin restricted ``Registry_Status__c`` to the statuses without ``inactive``. The run-start
check passes (most statuses fit) and warns; each Account whose company Proff calls inactive fails alone, with the
code, and keeps its old values; every other change is written once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RegsyncEnv
from tests.integration.backfill_world import World, open_world
from worker.company import Company, CompanyStatus
from worker.errors import InvalidOrgNumber
from worker.ledger.db import session_scope
from worker.ledger.views import list_failures
from worker.orgnr import normalise
from worker.sandbox.registry import registry_view
from worker.sync.policies import plan_record

#: Every status but "inactive", which Proff's statusFlag gives for dissolved and bankrupt companies alike.
LISTED = ("active", "dissolved", "bankrupt", "liquidation", "deleted", "not_found")


@pytest.fixture
def world(env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with open_world(tmp_path / "sandbox", monkeypatch, 600, validation_failures=0) as found:
        found.stack.salesforce.alter_field("Registry_Status__c", restricted=True, picklist=LISTED)
        found.connect()
        yield found


def planned_changes(world: World) -> dict[str, dict[str, Any]]:
    """Per Account, the changes the run plans from the seeded data (empty: unchanged; None: invalid)."""
    companies = {(c.country, c.org_number): c for c in world.stack.dataset.companies}
    spec = world.stack.spec("demo")
    changes = {}
    for account in world.stack.dataset.accounts:
        country = str(account.get("BillingCountryCode") or "")
        try:
            org = normalise(country, account.get("Org_Number__c"))
        except InvalidOrgNumber:
            continue
        company = companies.get((country, org)) or Company(
            org_number=org, country=country, status=CompanyStatus.NOT_FOUND
        )
        said = registry_view("proff", company)  # what the sandbox's Proff answers for it
        changes[account["Id"]] = plan_record(account, said, spec.mapping, {}).changes
    return changes


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_status_the_restricted_picklist_lacks_fails_per_record_and_is_never_sent(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    changes = planned_changes(world)
    inactive = {rid for rid, change in changes.items() if change.get("Registry_Status__c") == "inactive"}
    written = {rid for rid, change in changes.items() if change} - inactive
    before = world.stack.salesforce.accounts
    assert inactive, "the seeded data should have inactive companies"

    view = world.manual()

    with session_scope() as session:
        rows = list_failures(session, view["id"], limit=10_000)
    unfit = {row["record_id"]: row for row in rows if row["error_code"] == "VALUE_DOES_NOT_FIT"}
    assert set(unfit) == inactive
    assert {row["message"] for row in unfit.values()} == {
        "Registry_Status__c: 'inactive' is not a value of its restricted picklist"
    }
    assert view["failed"] == len(inactive) and view["updated"] == len(written)
    sent = [item for r in world.patches() for item in json.loads(r.body)["records"]]
    assert not [item for item in sent if item.get("Registry_Status__c") == "inactive"]
    assert {item["id"] for item in sent} == written
    after = world.stack.salesforce.accounts
    assert all(after[rid] == before[rid] for rid in inactive)  # nothing of theirs was written
    assert dict(world.stack.salesforce.writes) == dict.fromkeys(written, 1)
    assert "restricted picklist without inactive" in caplog.text  # the run-start check warned
