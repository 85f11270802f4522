"""The naive way to do regsync's job, run against the same sandbox for comparison.

simple-salesforce + httpx, nothing shared, nothing concurrent: query every Account (2,000-record pages), one
registry GET per Account in turn (org numbers merely stripped of spaces and dashes, so even invalid ones are
sent), and one update call per Account whose mapped fields differ from the registry. It uses regsync's own mapping
and field policies, so both sides write exactly the same values: the comparison is about calls and time.
"""

from __future__ import annotations

import json
import math
import re
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import requests
from simple_salesforce.api import Salesforce

from worker.company import CompanyKey
from worker.errors import RegistryMalformed
from worker.registry.proff import map_proff
from worker.sandbox.stack import CLIENT_ID, Stack, sandbox_stack
from worker.sync.policies import plan_record

_NOT_DIGITS = re.compile(r"\D")


@dataclass(frozen=True, slots=True)
class NaiveResult:
    accounts: int
    wall_s: float
    salesforce_calls: int
    registry_calls: int
    writes: int
    sandbox_salesforce_calls: int
    sandbox_registry_calls: int

    @property
    def per_record_s(self) -> float:
        return self.wall_s / self.accounts


def _salesforce(stack: Stack, ca_path: Path) -> Salesforce:
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides verify
    session.verify = str(ca_path)
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": stack.client_secret}
    token = session.post(stack.salesforce.token_url, data=form, timeout=30).json()
    return Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], session=session, version="62.0"
    )


def _lookup(client: httpx.Client, stack: Stack, country: str, number: str) -> httpx.Response:
    url = f"{stack.registry.proff_url}/api/companies/register/{country}/{number}"
    while True:
        response = client.get(url, headers={"Authorization": f"Token {stack.registry_token}"})
        if response.status_code != 429:
            return response
        time.sleep(float(response.headers.get("Retry-After", "1")))


class NaiveSync:
    """The naive job over one sandbox: counts its own calls, so the sandbox's logs can check them."""

    def __init__(self, stack: Stack, ca_path: Path) -> None:
        self.stack = stack
        self.spec = stack.spec("naive")
        self.sf = _salesforce(stack, ca_path)
        self.registry = httpx.Client(verify=ssl.create_default_context(cafile=str(ca_path)), timeout=30)
        self.salesforce_calls = 0
        self.registry_calls = 0
        self.writes = 0

    def run(self) -> None:
        fields = ", ".join(self.spec.crm_fields())
        result: dict[str, Any] = self.sf.query(f"SELECT {fields} FROM Account")
        self.salesforce_calls += 1
        while True:
            for record in result["records"]:
                self._sync_one(record)
            if result["done"]:
                break
            result = self.sf.query_more(result["nextRecordsUrl"], identifier_is_url=True)
            self.salesforce_calls += 1
        self.registry.close()

    def _sync_one(self, record: dict[str, Any]) -> None:
        country = str(record.get("BillingCountryCode") or "")
        number = _NOT_DIGITS.sub("", str(record.get("Org_Number__c") or ""))
        response = _lookup(self.registry, self.stack, country, number)
        self.registry_calls += 1
        if response.status_code != 200:
            return
        try:
            company = map_proff(CompanyKey(country, number), response.json())
        except RegistryMalformed:
            return
        changes = plan_record(record, company, self.spec.mapping, {}).changes
        if changes:
            # One call per Account. The sandbox speaks sObject Collections only, so this is a one-record
            # collection rather than PATCH sobjects/Account/{id}: the same single API call either way.
            item = {"attributes": {"type": "Account"}, "id": record["Id"], **changes}
            self.sf.restful("composite/sobjects", method="PATCH", data=json.dumps({"records": [item]}))
            self.salesforce_calls += 1
            self.writes += 1


def run_naive(
    accounts: int, dataset: dict[str, Any], workdir: Path, *, latency_s: float, limit_rps: float | None
) -> NaiveResult:
    """Seed a sandbox like the regsync run's (same seed: the same first ``accounts`` Accounts) and time the
    naive job over it."""
    with sandbox_stack(workdir / "naive-sandbox", accounts, validation_failures=0, **dataset) as stack:
        stack.registry.latency_s = latency_s
        stack.registry.rate_limit(limit_rps)
        naive = NaiveSync(stack, stack.ca.bundle_path)
        stack.salesforce.requests.clear()
        stack.registry.clear_requests()
        started = time.monotonic()
        naive.run()
        wall = time.monotonic() - started
        return NaiveResult(
            accounts=accounts,
            wall_s=wall,
            salesforce_calls=naive.salesforce_calls,
            registry_calls=naive.registry_calls,
            writes=naive.writes,
            sandbox_salesforce_calls=len(stack.salesforce.api_requests()),
            sandbox_registry_calls=len(stack.registry.requests),
        )


def naive_calls(accounts: int, changed: int) -> tuple[int, int]:
    """(Salesforce, registry) calls the naive job needs for ``accounts`` Accounts of which ``changed`` differ."""
    return math.ceil(accounts / 2000) + changed, accounts
