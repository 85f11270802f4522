"""Field policies and the per-record opt-out against the TLS sandbox org: protect_manual, fill_blank, opt-out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RegsyncEnv
from tests.integration.backfill_world import NAME, World, open_world
from worker.company import Company, CompanyStatus, canonical_value
from worker.connections.spec import parse_spec
from worker.crm.values import normalise as comparable
from worker.errors import InvalidOrgNumber
from worker.orgnr import normalise
from worker.sandbox.stack import DEMO_MAPPING
from worker.sync.policies import plan_record
from worker.sync.runner import start_run

OPT_OUT = "Registry_Sync_Opt_Out__c"
MAPPING = {**DEMO_MAPPING, "city": {"field": "BillingCity", "policy": "protect_manual"}}


@pytest.fixture
def world(env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with open_world(tmp_path / "sandbox", monkeypatch, 300, validation_failures=0) as found:
        yield found


def _company(world: World, account: dict[str, Any]) -> Company | None:
    country = str(account.get("BillingCountryCode") or "")
    try:
        org = normalise(country, account.get("Org_Number__c"))
    except InvalidOrgNumber:
        return None
    by_org = {(c.country, c.org_number): c for c in world.stack.dataset.companies}
    return by_org.get((country, org)) or Company(
        org_number=org, country=country, status=CompanyStatus.NOT_FOUND
    )


def _pick(world: World) -> tuple[str, str, str, str]:
    """Two accounts that would change (to opt out) and two whose registry city we blank in the CRM."""
    accounts, kinds = world.stack.salesforce.accounts, world.stack.dataset.kinds
    changing = [i for i, kind in kinds.items() if kind in ("stale", "dissolved")]
    with_city = [
        i
        for i, kind in kinds.items()
        if kind == "match" and canonical_value(_company(world, accounts[i]), "city")  # type: ignore[arg-type]
    ]
    return changing[0], changing[1], with_city[0], with_city[1]


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_protect_manual_keeps_hand_edits_fill_blank_never_overwrites_and_opt_out_is_honoured(
    world: World,
) -> None:
    sf = world.stack.salesforce
    opted_before, opted_later, edited, untouched = _pick(world)
    sf.edit(opted_before, **{OPT_OUT: True})
    sf.edit(edited, BillingCity=None)
    sf.edit(untouched, BillingCity=None)
    start = sf.snapshot()
    world.connect(mapping=MAPPING, opt_out_field=OPT_OUT)

    run_id = start_run(NAME, world.dispatch, triggered_by="tester")
    world.dispatch.run_plans()
    sf.edit(opted_later, **{OPT_OUT: True})  # opts out after planning: the sync sees the fresh value
    world.dispatch.run_chunks()
    first = world.view(run_id)

    assert sf.writes[opted_before] == 0 and sf.writes[opted_later] == 0
    assert first["opted_out"] == 2
    city_writes = {c.record_id for c in sf.changes if "BillingCity" in c.changed}
    assert {edited, untouched} <= city_writes  # blank values are filled under protect_manual too
    website_writes = [c.changed["Website"] for c in sf.changes if "Website" in c.changed]
    assert website_writes and all(comparable(old) is None for old, _new in website_writes)  # fill_blank
    overwritable = [
        i
        for i, acc in start.items()
        if comparable(acc.get("Website"))
        and (company := _company(world, acc))
        and company.website
        and comparable(company.website) != comparable(acc["Website"])
    ]
    assert overwritable  # the data offers fill_blank something to overwrite: it did not
    policy_spec = parse_spec({**world.stack.spec_data(NAME), "mapping": MAPPING})
    expected = sum(
        len(plan_record(acc, company, policy_spec.mapping, {}).protected)
        for i, acc in start.items()
        if i not in (opted_before, opted_later) and (company := _company(world, acc)) is not None
    )
    assert first["protected"] == expected > 0  # non-blank cities regsync never wrote are someone's

    sf.edit(edited, BillingCity="Manual City")  # someone fixes the city by hand after our write
    changes_before = len(sf.changes)
    second = world.manual()

    assert sf.snapshot()[edited]["BillingCity"] == "Manual City"
    assert second["protected"] == first["protected"] + 1
    later = {c.record_id for c in sf.changes[changes_before:] if "BillingCity" in c.changed}
    assert edited not in later and untouched not in later
    assert second["opted_out"] == 2 and sf.writes[opted_later] == 0
