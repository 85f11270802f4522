"""Issue 16, name matching through the sandbox (in process): 1,000 Leads without org numbers against a registry
with known answers (worker.sandbox.name_cases).

Precision of the org numbers filled by themselves ≥ 0.99; every ambiguous record waits in review with its
candidates and scores; no sole proprietorship is filled; a record is not searched again until its name changes;
searches count in ``registry_calls``, ``name_searches`` and the dry run; only the name and the country leave.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.integration.inprocess_runs import (
    ListDispatcher,
    install_connection,
    start_run,
    sync_all,
    use_world,
    view,
)
from worker.ledger.db import session_scope
from worker.matching.models import MatchStatus, NameMatch
from worker.sandbox.name_cases import NameCase, name_cases
from worker.sandbox.stack import Stack, sandbox_stack
from worker.sandbox.tls import RecordedRequest

N_LEADS = 1000


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Stack, list[NameCase]]]:
    with sandbox_stack(tmp_path / "sandbox", 2000, validation_failures=0) as stack:
        renamed, cases = name_cases(stack.dataset.companies, N_LEADS)
        for company in renamed:
            stack.registry.put(company)
        for case in cases:
            stack.salesforce.add_lead(case.lead)
        yield stack, cases


def matching_spec(stack: Stack, provider: str = "proff", **matching: Any) -> dict[str, Any]:
    data = stack.lead_spec_data("leads", provider, requests_per_second=2000, burst=200)
    data["matching"] = {"enabled": True, **matching}
    return data


def rows() -> dict[str, NameMatch]:
    with session_scope() as session:
        found = session.execute(select(NameMatch)).scalars().all()
        session.expunge_all()
    return {row.record_id: row for row in found}


def searches(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    return [r for r in requests if "query" in r.query or "navn" in r.query]


def run_once(stack: Stack, connection_id: int) -> dict[str, Any]:
    dispatch = ListDispatcher()
    run_id = start_run(connection_id, dispatch)
    sync_all(dispatch.take_chunks())
    return view(run_id)


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_thousand_leads_matched_by_name_with_known_answers(
    env: RegsyncEnv, world: tuple[Stack, list[NameCase]], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, cases = world
    use_world(monkeypatch, stack, None)
    connection_id = install_connection(stack, matching_spec(stack))
    stack.registry.clear_requests()
    result = run_once(stack, connection_id)
    found = rows()
    leads = stack.salesforce.leads
    sent = searches(stack.registry.requests)

    auto = {rid: row for rid, row in found.items() if row.status == MatchStatus.AUTO.value}
    by_id = {case.lead["Id"]: case for case in cases}
    right = sum(1 for rid, row in auto.items() if row.org_number == by_id[rid].answer)
    ones = sum(1 for case in cases if case.kind == "one")
    precision, recall = right / len(auto), right / ones
    print(
        f"\nname matching: {len(auto)} filled, precision {precision:.4f}, recall {recall:.4f} ({ones} answerable)"
    )
    print(
        "statuses:", Counter(row.status for row in found.values()), "kinds:", Counter(c.kind for c in cases)
    )
    assert precision >= 0.99 and recall >= 0.9

    assert len(found) == N_LEADS == result["name_searches"] == len(sent)
    assert {key for r in sent for key in r.query} == {
        "query",
        "pageNumber",
        "pageSize",
    }  # name and country only
    assert result["registry_calls"] == len(stack.registry.requests)
    for case in cases:
        row = found[case.lead["Id"]]
        if case.kind == "several":
            assert row.status == MatchStatus.REVIEW.value and len(row.candidates) >= 2, row.reason
            assert all("score" in c and c["org_number"] for c in row.candidates)
        if case.kind == "enk":
            assert (
                row.status == MatchStatus.REVIEW.value and leads[row.record_id].get("Org_Number__c") is None
            )
        if case.kind == "none":
            assert row.status == MatchStatus.NO_MATCH.value
        if row.status == MatchStatus.REVIEW.value:
            assert row.candidates and row.crm_name, "review shows the candidates and the CRM's name"
    filled = {rid for rid, lead in leads.items() if lead.get("Org_Number__c") and rid in by_id}
    assert filled == set(auto)
    # Everything else synced in the same run: the registry's legal form landed on every filled Lead.
    assert all(leads[rid]["Legal_Form__c"] == "AS" for rid in auto)
    assert result["updated"] == len(auto)

    stack.registry.clear_requests()
    again = run_once(stack, connection_id)
    assert again["name_searches"] == 0 and not searches(stack.registry.requests), (
        "asked again, names unchanged"
    )


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_brreg_name_search_and_sole_proprietors_skipped(
    env: RegsyncEnv, world: tuple[Stack, list[NameCase]], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, cases = world
    use_world(monkeypatch, stack, None)
    connection_id = install_connection(
        stack, matching_spec(stack, "brreg", sole_proprietors="skip", threshold=0.95)
    )
    stack.registry.clear_requests()
    result = run_once(stack, connection_id)
    found = rows()
    sent = searches(stack.registry.requests)
    assert len(sent) == result["name_searches"] == N_LEADS
    assert {key for r in sent for key in r.query} == {"navn", "size"}
    by_id = {case.lead["Id"]: case for case in cases}
    statuses = Counter((by_id[rid].kind, row.status) for rid, row in found.items())
    assert statuses[("enk", "skipped")] == sum(1 for c in cases if c.kind == "enk")
    auto = [row for row in found.values() if row.status == "auto"]
    assert auto and all(row.org_number == by_id[row.record_id].answer for row in auto)


@pytest.fixture
def small_world(tmp_path: Path) -> Iterator[tuple[Stack, list[NameCase]]]:
    with sandbox_stack(tmp_path / "sandbox", 300, validation_failures=0) as stack:
        renamed, cases = name_cases(stack.dataset.companies, 40, seed=5)
        for company in renamed:
            stack.registry.put(company)
        for case in cases:
            stack.salesforce.add_lead(case.lead)
        yield stack, cases


def test_review_approve_writes_and_reject_is_not_asked_again_until_the_name_changes(
    env: RegsyncEnv, small_world: tuple[Stack, list[NameCase]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from worker.cli.main import app
    from worker.ledger.models import AuditEvent

    stack, _cases = small_world
    use_world(monkeypatch, stack, None)
    connection_id = install_connection(stack, matching_spec(stack))
    first = run_once(stack, connection_id)
    runner = CliRunner()
    listed = runner.invoke(app, ["matches", "list", "leads", "--json"])
    assert listed.exit_code == 0, listed.output
    waiting = json.loads(listed.output)["items"]
    several = [v for v in waiting if len(v["candidates"]) >= 2]
    assert len(waiting) == first["name_searches"] - sum(
        1 for row in rows().values() if row.status != MatchStatus.REVIEW.value
    )
    to_approve, to_reject = several[0], several[1]
    pick = to_approve["candidates"][1]["org_number"]  # a person may take the runner-up

    assert (
        runner.invoke(app, ["matches", "approve", "leads", str(to_approve["id"])]).exit_code == 2
    )  # no actor
    approved = runner.invoke(
        app, ["matches", "approve", "leads", str(to_approve["id"]), "--org", pick, "--actor", "alice"]
    )
    assert approved.exit_code == 0, approved.output
    assert stack.salesforce.leads[to_approve["record_id"]]["Org_Number__c"] == pick
    rejected = runner.invoke(app, ["matches", "reject", "leads", str(to_reject["id"]), "--actor", "alice"])
    assert rejected.exit_code == 0, rejected.output
    again = runner.invoke(app, ["matches", "reject", "leads", str(to_reject["id"]), "--actor", "alice"])
    assert again.exit_code != 0, "a decided match is not decided twice"
    found = rows()
    assert (
        found[to_approve["record_id"]].status == "approved"
        and found[to_reject["record_id"]].status == "rejected"
    )
    assert found[to_reject["record_id"]].crm_name is None
    with session_scope() as session:
        actions = [e.action for e in session.execute(select(AuditEvent)).scalars()]
    assert actions.count("name_match.approve") == 1 and actions.count("name_match.reject") == 1

    stack.registry.clear_requests()
    second = run_once(stack, connection_id)
    assert second["name_searches"] == 0 and not searches(stack.registry.requests)
    stack.salesforce.edit(to_reject["record_id"], Company="Brand New Name")
    third = run_once(stack, connection_id)
    assert third["name_searches"] == 1
    assert [r.query["query"] for r in searches(stack.registry.requests)] == [["Brand New Name"]]


def test_dry_run_counts_searches_without_searching(
    env: RegsyncEnv, small_world: tuple[Stack, list[NameCase]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.settings import get_settings
    from worker.ledger import runs
    from worker.ledger.models import RunKind
    from worker.sync.plan import plan_run

    stack, _cases = small_world
    use_world(monkeypatch, stack, None)
    connection_id = install_connection(stack, matching_spec(stack))
    stack.registry.clear_requests()
    with session_scope() as session:
        run_id = runs.create_run(
            session, connection_id, kind=RunKind.BACKFILL, triggered_by="test", options={"dry_run": True}
        ).id
    dispatch = ListDispatcher()
    assert plan_run(run_id, dispatch, settings=get_settings()) == "planned"
    sync_all(dispatch.take_chunks())
    result = view(run_id)
    assert result["dry_run"] and result["name_searches"] == 40
    assert not searches(stack.registry.requests) and not rows()
    assert not any(lead.get("Org_Number__c") for lead in stack.salesforce.leads.values())


def _estimate(*extra: str) -> dict[str, Any]:
    from typer.testing import CliRunner

    from worker.cli.main import app

    answer = CliRunner().invoke(app, ["backfill", "leads", "--estimate", "--json", *extra])
    assert answer.exit_code == 0, answer.output
    return dict(json.loads(answer.output)["estimate"])


def test_estimate_counts_the_name_searches_a_run_would_make(
    env: RegsyncEnv, small_world: tuple[Stack, list[NameCase]], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, _cases = small_world
    use_world(monkeypatch, stack, None)
    connection_id = install_connection(stack, matching_spec(stack))
    stack.registry.clear_requests()
    before, dry = _estimate(), _estimate("--dry-run")
    assert not searches(stack.registry.requests)  # estimating searches nothing
    first = run_once(stack, connection_id)
    assert before["name_searches"] == dry["name_searches"] == first["name_searches"] == 40
    assert before["registry_calls_max"] == dry["registry_calls_max"] + 40  # a dry run only counts them
    assert before["count_calls"] >= 2  # the COUNT(), and reading the selection to find them

    found = rows()
    waiting = next(row for row in found.values() if row.status == MatchStatus.REVIEW.value)
    assert _estimate()["name_searches"] == 0  # every record was searched under its current name
    stack.salesforce.edit(waiting.record_id, Company="Brand New Name")
    assert _estimate()["name_searches"] == 1  # a renamed record is searched again
    assert _estimate("--where", "Company", "!=", "Brand New Name")["name_searches"] == 0  # within the filter
    from typer.testing import CliRunner

    from worker.cli.main import app

    printed = " ".join(CliRunner().invoke(app, ["backfill", "leads", "--estimate"]).output.split())
    assert "name searches: 1 record(s) without a valid org number (each a registry call)" in printed
    assert "(one per unique valid org number, or batch; name searches included)" in printed
