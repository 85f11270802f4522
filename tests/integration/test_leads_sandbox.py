"""Leads as a connection's object, in process against the sandbox org (issue 16, part 1).

Converted Leads are never read or written (every SOQL of the run carries ``IsConverted = false``), every write
to Leads says ``Sforce-Auto-Assign: FALSE``, and a Lead converted mid-run fails alone with
CANNOT_UPDATE_CONVERTED_LEAD.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RegsyncEnv
from tests.integration.inprocess_runs import (
    ListDispatcher,
    install_connection,
    start_run,
    sync_all,
    use_world,
    view,
)
from worker.connections.spec import parse_spec
from worker.crm.objects import CONVERTED_LEAD
from worker.errors import InvalidOrgNumber
from worker.ledger.db import session_scope
from worker.ledger.views import list_failures
from worker.orgnr import normalise
from worker.sandbox.leads import CONVERTED_MARK
from worker.sandbox.registry import registry_view
from worker.sandbox.stack import Stack, sandbox_stack
from worker.sandbox.tls import RecordedRequest
from worker.sync.policies import plan_record

COUNTS = ("planned", "invalid", "unchanged", "updated", "failed")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with sandbox_stack(tmp_path / "sandbox", 20, n_leads=300, validation_failures=0) as started:
        yield started


def soql_of(requests: list[RecordedRequest]) -> list[str]:
    return [q for r in requests if r.path.rstrip("/").endswith("/query") for q in r.query.get("q", [])]


def patched_ids(requests: list[RecordedRequest]) -> list[tuple[str, str | None]]:
    """(record Id, Sforce-Auto-Assign header) of every record in every PATCH."""
    found = []
    for request in requests:
        if request.method == "PATCH":
            header = request.headers.get("sforce-auto-assign")
            found += [(item["id"], header) for item in json.loads(request.body)["records"]]
    return found


def test_lead_run_skips_converted_leads_and_never_auto_assigns(
    env: RegsyncEnv, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_world(monkeypatch, stack, None)
    data = stack.lead_spec_data("leads", requests_per_second=1000, burst=100)
    connection_id = install_connection(stack, data)
    dispatch = ListDispatcher()
    run_id = start_run(connection_id, dispatch)
    sync_all(dispatch.take_chunks())
    result = view(run_id)

    truth = stack.lead_truth(parse_spec(data))
    assert {k: result[k] for k in COUNTS} == {k: getattr(truth, k) for k in COUNTS}
    converted = {lead["Id"] for lead in stack.leads if lead.get("IsConverted")}
    assert len(converted) == 30
    requests = stack.salesforce.api_requests()
    lead_queries = [q for q in soql_of(requests) if " FROM Lead" in q]
    assert len(lead_queries) >= 3  # the plan and two chunk re-reads at least
    scoped = ("WHERE IsConverted = false", ") AND IsConverted = false")
    assert all(any(part in q for part in scoped) for q in lead_queries), lead_queries
    patched = patched_ids(requests)
    assert patched and not converted & {rid for rid, _ in patched}
    assert {header for _, header in patched} == {"FALSE"}
    leads = stack.salesforce.leads
    assert all(leads[rid]["Legal_Form__c"] == CONVERTED_MARK for rid in converted)
    assert stack.salesforce.accounts and not stack.salesforce.writes, "the Account side was touched"


def test_lead_converted_mid_run_fails_alone_with_its_code(
    env: RegsyncEnv, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_world(monkeypatch, stack, None)
    data = stack.lead_spec_data("leads", requests_per_second=1000, burst=100)
    connection_id = install_connection(stack, data)
    dispatch = ListDispatcher()
    run_id = start_run(connection_id, dispatch)
    truth = stack.lead_truth(parse_spec(data))
    to_convert = _leads_that_change(stack, data)[:2]
    stack.salesforce.convert_before_write(to_convert)
    sync_all(dispatch.take_chunks())
    result = view(run_id)

    assert result["status"] == "partially_failed"
    assert result["failed"] == truth.failed + 2 and result["updated"] == truth.updated - 2
    with session_scope() as session:
        rows = list_failures(session, run_id, limit=1000)
    assert sorted(r["record_id"] for r in rows if r["error_code"] == CONVERTED_LEAD) == sorted(to_convert)
    assert all(stack.salesforce.leads[rid]["IsConverted"] for rid in to_convert)


def _leads_that_change(stack: Stack, data: dict[str, Any]) -> list[str]:
    """Open Leads with a valid org number that the run will write."""
    spec = parse_spec(data)
    companies = {(c.country, c.org_number): c for c in stack.dataset.companies}
    found = []
    for lead in stack.leads:
        if lead.get("IsConverted"):
            continue
        try:
            org = normalise(lead["CountryCode"], lead["Org_Number__c"])
        except InvalidOrgNumber:
            continue
        company = companies.get((lead["CountryCode"], org))
        if company and plan_record(lead, registry_view("proff", company), spec.mapping, {}).changes:
            found.append(lead["Id"])
    return found
