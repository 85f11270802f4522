"""Issue 16, acceptance 1: a Lead connection and an Account connection on the same org and registry token run at
the same time through real Celery worker processes.

Both runs end with exactly the counts their seeded records imply; the registry (answering 429 above R requests a
second) sees at most R·1.05 requests in any one-second window across both runs, because both connections take
tokens from one limiter; both count against one API budget (the org's); no converted Lead is read or written (the
Lead SOQL carries ``IsConverted = false`` and no PATCH names one); every Lead write says
``Sforce-Auto-Assign: FALSE``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from config.settings import get_settings
from tests.conftest import RegsyncEnv
from tests.integration.celery_cluster import ClusterEnv, celery_cluster, unique_queue
from tests.integration.inprocess_runs import install_connection, view
from tests.integration.test_cluster_rate_limit import stop_all_at_once, wait_final
from tests.integration.test_ratelimit_redis import max_in_window
from worker.budget.control import budget_store, connection_tag
from worker.budget.guard import utc_day
from worker.connections.spec import parse_spec
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger.db import session_scope
from worker.sandbox.gc_pause import no_gc_pauses
from worker.sandbox.leads import CONVERTED_MARK
from worker.sandbox.stack import sandbox_stack
from worker.sandbox.tls import RecordedRequest
from worker.sync.runner import start_run

pytestmark = pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)

R = 40
N_ACCOUNTS = 160
N_LEADS = 200  # 20 of them converted
WORKERS = 3
COUNTS = ("planned", "invalid", "unchanged", "updated", "failed")


def lead_patches(requests: list[RecordedRequest]) -> list[tuple[str, str | None]]:
    """(Lead Id, Sforce-Auto-Assign header) of every Lead record in every PATCH."""
    found = []
    for request in requests:
        if request.method != "PATCH":
            continue
        header = request.headers.get("sforce-auto-assign")
        records = json.loads(request.body)["records"]
        found += [(item["id"], header) for item in records if item["attributes"]["type"] == "Lead"]
    return found


def lead_queries(requests: list[RecordedRequest]) -> list[str]:
    queries = [q for r in requests if r.path.rstrip("/").endswith("/query") for q in r.query.get("q", [])]
    return [q for q in queries if " FROM Lead" in q]


def test_lead_and_account_connections_share_one_limit_and_skip_converted_leads(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sandbox_stack(tmp_path / "sandbox", N_ACCOUNTS, n_leads=N_LEADS, countries=("NO", "SE")) as stack:
        world = ClusterEnv(env.database_url, redis_url, env.secret_key, stack.ca.bundle_path, unique_queue())
        world.apply(monkeypatch)
        accounts_data = stack.spec_data("accounts", "proff", requests_per_second=R, burst=1)
        leads_data = stack.lead_spec_data("leads", "proff", requests_per_second=R, burst=1)
        for data in (accounts_data, leads_data):
            data["sync"] = {"chunk_size": 25}
        ids = [install_connection(stack, data) for data in (accounts_data, leads_data)]
        stack.registry.latency_s = 0.02
        stack.registry.rate_limit(R)
        started = time.monotonic()
        with celery_cluster(world, tmp_path / "workers", WORKERS) as cluster, no_gc_pauses():
            run_ids = [
                start_run(name, CeleryDispatcher(), triggered_by="test") for name in ("accounts", "leads")
            ]
            finals = [wait_final(run_id, timeout_s=45) for run_id in run_ids]
            stop_all_at_once(cluster)
        elapsed = time.monotonic() - started
        arrivals = [request.at for request in stack.registry.requests]
        too_many = stack.registry.statuses[429]
        truths = [stack.truth(parse_spec(accounts_data)), stack.lead_truth(parse_spec(leads_data))]
        requests = stack.salesforce.api_requests()
        leads_now = stack.salesforce.leads
        output = cluster.output()

    busiest = max_in_window(arrivals)
    print(
        f"\n2 runs, {len(arrivals)} registry requests, busiest 1-s window {busiest} (R={R}); {elapsed:.1f} s"
    )
    for final, truth in zip(finals, truths, strict=True):
        assert {k: final[k] for k in COUNTS} == {k: getattr(truth, k) for k in COUNTS}
        assert final["status"] in ("succeeded", "partially_failed")
    assert busiest <= R * 1.05
    unique = sum(truth.unique_valid_org_numbers for truth in truths)
    assert sum(int(str(f["registry_calls"])) for f in finals) == len(arrivals) == unique + too_many
    # Errors of regsync's own code (a worker SIGTERMed at the end may report its idle pump to celery's logger).
    assert '"level": "ERROR", "logger": "worker.' not in output

    converted = {lead["Id"] for lead in stack.leads if lead.get("IsConverted")}
    assert len(converted) == N_LEADS // 10
    queries = lead_queries(requests)
    assert queries and all(
        "WHERE IsConverted = false" in q or ") AND IsConverted = false" in q for q in queries
    )
    patched = lead_patches(requests)
    assert patched and not converted & {lead_id for lead_id, _ in patched}
    assert {header for _, header in patched} == {"FALSE"}
    assert all(leads_now[lead_id]["Legal_Form__c"] == CONVERTED_MARK for lead_id in converted)

    with session_scope() as session:
        tags = {connection_tag(session, connection_id) for connection_id in ids}
    assert len(tags) == 1, "two connections on one org must share one API budget"
    spent = budget_store(get_settings()).own_used(tags.pop(), utc_day(time.time()))
    calls = [int(view(run_id)["crm_calls"]) for run_id in run_ids]
    print(f"budget: {spent} calls counted for the org; the runs made {calls}")
    assert spent == sum(calls), "the org's budget counts both connections' calls"
