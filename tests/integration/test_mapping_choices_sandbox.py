"""Issue 10, acceptance 4 and the registry outcome counts, end to end against the TLS sandboxes.

A connection file, applied with the CLI, maps Industry to the full NACE text ("62.010 Programmeringstjenester")
and the billing street to the postal address; a run (the real planner and chunk code, real HTTPS clients) then
writes exactly that into the sandbox org, for Proff and for Brønnøysund. A brreg run over Norwegian and Swedish
Accounts counts not found / deleted / inactive companies in their own counters, lists them as notices (not
failures) in `runs failures --code`, skips the Swedish Accounts as out of scope, and shows all of it in
`runs show`, `runs list --json` and the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import RegsyncEnv
from tests.integration.backfill_world import NAME, World, open_world
from worker.api.app import create_app
from worker.api.keys import create_key
from worker.api.throttle import MemoryThrottle
from worker.cli.main import app
from worker.company import Company, CompanyStatus, canonical_value
from worker.errors import InvalidOrgNumber
from worker.ledger.db import session_scope
from worker.orgnr import normalise
from worker.registry.outcomes import NOTICE_CODES, notice_for
from worker.roles import Role

pytestmark = pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)

#: The customer's choices, as they write them in the connection file.
MAPPING = """
[mapping]
status = { field = "Registry_Status__c" }
nace_full = { field = "Industry" }
postal_street = { field = "BillingStreet" }
business_city = { field = "BillingCity" }
"""
MAPPED = {"Registry_Status__c", "Industry", "BillingStreet", "BillingCity"}
SYSTEM = {"LastModifiedDate", "SystemModstamp"}  # Salesforce sets these on every write


def _toml_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def connection_file(world: World, provider: str) -> str:
    """The sandbox connection as a TOML file, with MAPPING as its mapping."""
    data = world.stack.spec_data(NAME, provider, requests_per_second=2000, burst=200)
    lines = [f'name = "{NAME}"']
    for table in ("salesforce", "registry"):
        lines += ["", f"[{table}]", *(f"{k} = {_toml_value(v)}" for k, v in data[table].items())]
    return "\n".join(lines) + "\n" + MAPPING


def cli(*args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(app, list(args), input=stdin, env={"REGSYNC_ACTOR": "tester"})
    assert result.exit_code in (0, 1), result.output
    return result.output


def apply_file(world: World, directory: Path, provider: str) -> None:
    """`connection apply`, `secret set` × 2, then apply again: the mapping is checked against describe."""
    path = directory / f"{NAME}.toml"
    path.write_text(connection_file(world, provider), encoding="utf-8")
    cli("connection", "apply", str(path))
    cli("secret", "set", NAME, "salesforce_client_secret", stdin=world.stack.client_secret)
    cli("secret", "set", NAME, "registry_token", stdin=world.stack.registry_token)
    checked = cli("connection", "apply", str(path))
    assert "describe check passed: the mapping fits Account" in checked, checked  # it ran, and passed


@pytest.fixture
def world_of(env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    opened: list[Any] = []

    def build(n: int, **dataset: Any) -> World:
        context = open_world(tmp_path / "sandbox", monkeypatch, n, validation_failures=0, **dataset)
        opened.append(context)
        return context.__enter__()

    yield build
    for context in reversed(opened):
        context.__exit__(None, None, None)


def company_of(world: World, account: dict[str, Any]) -> Company | None:
    """The registry's company for a seeded account; None for an invalid number or one the registry lacks."""
    country = str(account.get("BillingCountryCode") or "")
    try:
        org = normalise(country, account.get("Org_Number__c"))
    except InvalidOrgNumber:
        return None
    return world.stack.dataset.by_org_number.get(org)


@pytest.mark.parametrize("provider", ["proff", "brreg"])
def test_connection_file_maps_industry_to_full_nace_text_and_billing_street_to_postal_address(
    world_of: Any, tmp_path: Path, provider: str
) -> None:
    world = world_of(150)
    before = world.stack.salesforce.snapshot()
    apply_file(world, tmp_path, provider)

    view = world.manual()

    after = world.stack.salesforce.snapshot()
    active = {
        rid: company
        for rid, account in before.items()
        if (company := company_of(world, account)) is not None and company.status is CompanyStatus.ACTIVE
    }
    assert len(active) > 100
    for record_id, company in active.items():
        assert company.nace_code and company.nace_text and company.postal_address and company.business_address
        stored = after[record_id]
        assert stored["Industry"] == f"{company.nace_code} {company.nace_text}", record_id
        assert stored["BillingStreet"] == company.postal_address.street, record_id
        assert stored["BillingCity"] == company.business_address.city, record_id
    box = [rid for rid, c in active.items() if c.postal_address != c.business_address]
    assert len(box) > 10  # the postal street differs: written from the postal address, not the visitor one
    assert all(after[rid]["BillingStreet"].startswith(("Box ", "Postboks ")) for rid in box)
    sample = next(iter(active.values()))
    assert canonical_value(sample, "nace_full") == after[next(iter(active))]["Industry"]
    for record_id, account in before.items():  # nothing but the mapped fields changed anywhere
        changed = {
            k for k in set(account) | set(after[record_id]) if account.get(k) != after[record_id].get(k)
        }
        assert changed <= MAPPED | SYSTEM, (record_id, changed)
    patched = {
        key for patch in world.patches() for record in json.loads(patch.body)["records"] for key in record
    }
    assert patched - {"Id", "id", "attributes"} <= MAPPED
    assert view["failed"] == 0 and view["updated"] >= len(active)


def _outcomes(world: World) -> dict[str, CompanyStatus]:
    """Make the registry forget one active NO company (never existed: 404, or missing from a batch answer).

    Deleted companies (brreg: 200 with ``slettedato``), bankrupt ones and those in liquidation are seeded.
    """
    no_active = [
        c for c in world.stack.dataset.companies if c.country == "NO" and c.status is CompanyStatus.ACTIVE
    ]
    world.stack.registry.put(no_active[0].model_copy(update={"status": CompanyStatus.NOT_FOUND}))
    return {no_active[0].org_number: CompanyStatus.NOT_FOUND}


def expected_notices(world: World, changed: dict[str, CompanyStatus]) -> dict[str, str]:
    """Record id → notice code: NO records whose company is not active (or made unknown/removed above)."""
    expected = {}
    for record_id, account in world.stack.salesforce.snapshot().items():
        company = company_of(world, account)
        if company is None or company.country != "NO":
            continue
        notice = notice_for(changed.get(company.org_number, company.status))
        if notice is not None:
            expected[record_id] = notice.value
    return expected


def test_brreg_run_counts_registry_outcomes_as_notices_and_other_countries_as_out_of_scope(
    world_of: Any, tmp_path: Path
) -> None:
    world = world_of(300, countries=("NO", "SE"), dissolved_share=0.1)
    apply_file(world, tmp_path, "brreg")
    changed = _outcomes(world)
    expected = expected_notices(world, changed)
    swedish = [a for a in world.stack.salesforce.snapshot().values() if a["BillingCountryCode"] == "SE"]
    swedish_valid = [a for a in swedish if company_of(world, a) is not None]

    view = world.manual()

    by_code = {code: sorted(r for r, c in expected.items() if c == code) for code in NOTICE_CODES}
    assert view["registry_not_found"] == len(by_code["REGISTRY_NOT_FOUND"]) == 1
    assert view["registry_deleted"] == len(by_code["REGISTRY_DELETED"]) > 0
    assert view["registry_inactive"] == len(by_code["REGISTRY_INACTIVE"]) > 1
    assert view["status_unknown"] == 0
    assert view["out_of_scope"] == len(swedish_valid) > 50
    assert view["failed"] == 0 and view["status"] == "partially_failed"  # invalid org numbers only
    fates = ("invalid", "opted_out", "out_of_scope", "unchanged", "updated", "failed")
    assert view["planned"] == 300 == sum(view[fate] for fate in fates)
    assert all(world.stack.salesforce.writes[a["Id"]] == 0 for a in swedish)
    statuses = world.stack.salesforce.snapshot()
    for record_id, code in expected.items():  # the status is still written where mapped
        assert statuses[record_id]["Registry_Status__c"] != "active", (record_id, code)

    for code, record_ids in by_code.items():
        listed = json.loads(cli("runs", "failures", str(view["id"]), "--code", code, "--json"))
        assert sorted(row["record_id"] for row in listed) == record_ids
        assert all(row["notice"] and row["error_code"] == code for row in listed)
    table = cli("runs", "failures", str(view["id"]), "--code", "REGISTRY_INACTIVE", "--limit", "1000")
    assert table.count("notice") == len(by_code["REGISTRY_INACTIVE"]) and "failure" not in table
    every = json.loads(cli("runs", "failures", str(view["id"]), "--json", "--limit", "1000"))
    assert {row["error_code"] for row in every if not row["notice"]} == {"ORGNR_INVALID"}
    assert "REGISTRY_UNSUPPORTED_COUNTRY" not in {row["error_code"] for row in every}

    shown = cli("runs", "show", str(view["id"]))
    for label, key in (("registry deleted", "registry_deleted"), ("out of scope", "out_of_scope")):
        assert any(label in line and str(view[key]) in line for line in shown.splitlines()), shown
    [listed_run] = json.loads(cli("runs", "list", "--json"))
    counters = (
        "registry_not_found",
        "registry_deleted",
        "registry_inactive",
        "status_unknown",
        "out_of_scope",
    )
    assert {k: listed_run[k] for k in counters} == {k: view[k] for k in counters}

    with session_scope() as session:
        key = create_key(session, connections=[NAME], role=Role.VIEWER, actor="test").secret
    client = TestClient(create_app(throttle=MemoryThrottle(10_000)))
    headers = {"Authorization": f"Bearer {key}"}
    body = client.get(f"/v1/runs/{view['id']}", headers=headers).json()
    assert {k: body[k] for k in counters} == {k: view[k] for k in counters}
    page = client.get(f"/v1/runs/{view['id']}/failures?code=REGISTRY_DELETED", headers=headers).json()
    assert sorted(item["record_id"] for item in page["items"]) == by_code["REGISTRY_DELETED"]
    assert all(item["notice"] for item in page["items"])
