"""The surfaces of a changes run end to end (issue 14, package S): `regsync run --changes --wait` after a full run,
`runs list`, `feed show` and the status digest, with two real Celery worker processes, PostgreSQL, Redis, the
sandbox Salesforce org and the sandbox brreg registry over TLS.

NEEDS THE CHANGES PLANNER (package P): until it is merged, a changes run plans like a full run and this fails.

After a full run, the registry's feed is scripted: mapped changes, changes of an unmapped path only (revenue),
companies gone bankrupt, deleted, and new units the CRM does not hold. The changes run must write exactly the
records of the companies whose mapped fields changed, count what happened, move the feed watermark to the last
id, and send ONE signed digest with the bankrupt and deleted records' Ids (never values or org numbers).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import RegsyncEnv
from tests.integration.alert_receivers import WebhookReceiver
from tests.integration.celery_cluster import ClusterEnv, celery_cluster, unique_queue
from tests.integration.inprocess_runs import install_connection
from worker.cli.main import app
from worker.company import Company, CompanyStatus
from worker.connections.secrets import set_secret
from worker.errors import InvalidOrgNumber
from worker.ledger.db import session_scope
from worker.orgnr import normalise
from worker.sandbox.dataset import OrgNumbers
from worker.sandbox.demo import crm_companies
from worker.sandbox.stack import Stack, sandbox_stack

pytestmark = pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)

KEY = "whsec-" + "s" * 32
NAME = "feedco"


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def printed_json(output: str) -> Any:
    """The JSON document a command printed (the workers' world logs JSON lines at DEBUG around it)."""
    start = output.index("\n{\n") + 1 if not output.startswith("{\n") else 0
    return json.JSONDecoder().raw_decode(output[start:])[0]


def accounts_of(stack: Stack, orgs: set[str]) -> set[str]:
    """The Ids of the sandbox org's accounts holding one of these (NO) org numbers."""
    found = set()
    for account in stack.dataset.accounts:
        if account.get("BillingCountryCode") != "NO":
            continue
        try:
            org = normalise("NO", account.get("Org_Number__c"))
        except InvalidOrgNumber:
            continue
        if org in orgs:
            found.add(str(account["Id"]))
    return found


def script(stack: Stack) -> dict[str, Any]:
    """Script the feed; returns what was scripted by kind (org numbers) and the last brreg id."""
    pool = crm_companies(stack, "NO")
    mapped, unmapped, bankrupt, deleted = pool[:12], pool[12:16], pool[16:19], pool[19:22]
    registry, last = stack.registry, 0
    for company in mapped:
        changed = company.model_copy(update={"employees": (company.employees or 0) + 7})
        last = registry.script_change(changed).brreg_id or last
    for company in unmapped:  # brreg's founding date: no mapping of this connection reads it
        changed = company.model_copy(update={"founded": dt.date(1901, 1, 2)})
        last = registry.script_change(changed).brreg_id or last
    for company in bankrupt:
        last = (
            registry.script_change(company.model_copy(update={"status": CompanyStatus.BANKRUPT})).brreg_id
            or last
        )
    for company in deleted:
        last = registry.script_delete("NO", company.org_number).brreg_id or last
    taken, numbers = {c.org_number for c in stack.dataset.companies}, OrgNumbers(random.Random(99))
    new = [org for org in (numbers.next("NO") for _ in range(10)) if org not in taken][:3]
    for index, org in enumerate(new):
        last = (
            registry.script_new(Company(org_number=org, country="NO", name=f"Ny {index} AS")).brreg_id or last
        )
    return {
        "mapped": {c.org_number for c in mapped},
        "unmapped": {c.org_number for c in unmapped},
        "bankrupt": {c.org_number for c in bankrupt},
        "deleted": {c.org_number for c in deleted},
        "new": len(new),
        "total": len(registry.feeds.brreg_rows),
        "last": last,
    }


def wait_for_digest(receiver: WebhookReceiver, timeout_s: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        digests = [hook for hook in receiver.received if hook.payload.get("event") == "changes.status_digest"]
        if digests:
            time.sleep(2)  # a second one (there must be none) would come within the same pass
            return [
                hook for hook in receiver.received if hook.payload.get("event") == "changes.status_digest"
            ]
        time.sleep(0.2)
    return []


def test_run_changes_wait_then_runs_list_feed_show_and_one_digest(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sandbox_stack(tmp_path / "sandbox", 400, validation_failures=0) as stack:
        world = ClusterEnv(env.database_url, redis_url, env.secret_key, stack.ca.bundle_path, unique_queue())
        world.apply(monkeypatch)
        receiver = WebhookReceiver(stack.ca, KEY).start()
        data = stack.spec_data(NAME, "brreg", requests_per_second=500, burst=50)
        data["alerts"] = {
            "channels": {"credit-hook": {"type": "webhook", "url": receiver.url, "timeout_s": 5}}
        }
        install_connection(stack, data)
        with session_scope() as session:
            set_secret(session, NAME, "webhook_signing_key", KEY, "test-admin")
        try:
            with celery_cluster(world, tmp_path / "workers", 2):
                full = cli("run", NAME, "--wait", "--json")
                scripted = script(stack)
                before = dict(stack.salesforce.writes)
                changes = cli("run", NAME, "--changes", "--wait", "--json")
                listed = cli("runs", "list", "--connection", NAME)
                shown = cli("feed", "show", NAME, "--json")
                digests = wait_for_digest(receiver)
            writes = {
                rid: n - before.get(rid, 0)
                for rid, n in stack.salesforce.writes.items()
                if n != before.get(rid, 0)
            }
        finally:
            receiver.stop()

    assert printed_json(full.output)["status"] in ("succeeded", "partially_failed"), full.output[-3000:]
    assert changes.exit_code == 0, changes.output[-3000:]
    run = printed_json(changes.output)
    written = scripted["mapped"] | scripted["bankrupt"] | scripted["deleted"]
    assert run["mode"] == "changes" and run["status"] == "succeeded"
    assert (run["changes_seen"], run["changes_matched"], run["changes_unmapped"]) == (
        scripted["total"],
        scripted["total"] - scripted["new"],
        len(scripted["unmapped"]),
    )
    assert run["feed_pages"] >= 1 and run["updated"] == len(accounts_of(stack, written))
    assert run["api_used_before"] is not None and run["api_used_after"] >= run["api_used_before"]
    assert set(writes) == accounts_of(stack, written) and max(writes.values()) == 1, (
        "each record once, no other"
    )

    assert "changes" in listed.output and "full" in listed.output

    feed = {s["source"]: s for s in printed_json(shown.output)["sources"]}
    assert feed["feed:brreg:NO"]["position"] == str(scripted["last"])
    assert feed["feed:brreg:NO"]["last_page"]["run_id"] == run["id"]
    assert feed["crm:Account"]["position"] is not None

    (digest,) = digests
    assert digest.signature_ok and digest.payload["run_id"] == run["id"]
    assert digest.payload["records"]["bankrupt"] == sorted(accounts_of(stack, scripted["bankrupt"]))
    assert digest.payload["records"]["deleted"] == sorted(accounts_of(stack, scripted["deleted"]))
    body = digest.body.decode()
    assert not any(org in body for org in written), "no org numbers in a digest"
