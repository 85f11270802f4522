"""A whole sandbox world: CA, Salesforce and registry servers seeded from one dataset, and its truth.

Shared by `regsync demo`, the integration tests and the benchmarks, so that all three exercise the same wire
protocols and can compare a run's counts with what the seeded data says they must be.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.company import Company, CompanyStatus
from worker.connections.spec import ConnectionSpec, parse_spec
from worker.errors import InvalidOrgNumber
from worker.orgnr import normalise
from worker.sandbox.dataset import Account, Dataset, make_dataset
from worker.sandbox.leads import LEAD_MAPPING, leads_from
from worker.sandbox.registry import SandboxRegistry, registry_view
from worker.sandbox.salesforce import SandboxSalesforce
from worker.sandbox.tls import SandboxCA
from worker.sync.policies import plan_record

CLIENT_ID = "3MVG9sandbox.regsync.client"
#: Sandbox-only credentials, generated per stack so that tests can search all output for them.
DEMO_MAPPING: dict[str, dict[str, str]] = {
    "name": {"field": "Name", "policy": "overwrite"},
    "status": {"field": "Registry_Status__c", "policy": "overwrite"},
    "legal_form": {"field": "Legal_Form__c", "policy": "overwrite"},
    "employees": {"field": "NumberOfEmployees", "policy": "overwrite"},
    "city": {"field": "BillingCity", "policy": "overwrite"},
    "nace_code": {"field": "Industry_Code__c", "policy": "overwrite"},
    "website": {"field": "Website", "policy": "fill_blank"},
}


@dataclass(frozen=True, slots=True)
class Truth:
    """What a full run over the seeded data must report."""

    planned: int
    invalid: int
    unchanged: int
    updated: int
    failed: int
    unique_valid_org_numbers: int
    failure_codes: dict[str, int]


@dataclass
class Stack:
    ca: SandboxCA
    dataset: Dataset
    salesforce: SandboxSalesforce
    registry: SandboxRegistry
    client_secret: str
    registry_token: str
    validation_failures: tuple[str, ...]
    #: The seeded Leads (``sandbox_stack(n_leads=...)``), converted ones included.
    leads: list[Account] = field(default_factory=list)

    def spec_data(self, name: str = "demo", provider: str = "proff", **registry: Any) -> dict[str, Any]:
        """A connection file's content pointing at this sandbox."""
        base = self.registry.proff_url if provider == "proff" else self.registry.brreg_url
        return {
            "name": name,
            "salesforce": {
                "token_url": self.salesforce.token_url,
                "auth": "client_credentials",
                "client_id": CLIENT_ID,
                "api_version": "62.0",
                "object": "Account",
                "org_number_field": "Org_Number__c",
                "country_field": "BillingCountryCode",
            },
            "registry": {"provider": provider, "base_url": base, **registry},
            "mapping": DEMO_MAPPING,
            "sync": {"chunk_size": 200},
        }

    def lead_spec_data(self, name: str = "leads", provider: str = "proff", **registry: Any) -> dict[str, Any]:
        """A connection file for this sandbox's Leads (same org, same registry token as :meth:`spec_data`)."""
        data = self.spec_data(name, provider, **registry)
        data["salesforce"].update(object="Lead", country_field="CountryCode")
        data["mapping"] = LEAD_MAPPING
        return data

    def lead_truth(self, spec: ConnectionSpec) -> Truth:
        """Expected counts of a run over the seeded Leads that are not converted."""
        open_leads = [lead for lead in self.leads if not lead.get("IsConverted")]
        return compute_truth(Dataset(self.dataset.companies, open_leads), spec, ())

    def spec(self, name: str = "demo", provider: str = "proff", **registry: Any) -> ConnectionSpec:
        return parse_spec(self.spec_data(name, provider, **registry))

    def truth(self, spec: ConnectionSpec) -> Truth:
        """Expected counts of a run over every seeded account with ``spec``'s mapping."""
        return compute_truth(self.dataset, spec, self.validation_failures)

    def trust_env(self) -> dict[str, str]:
        """Environment that makes our clients (and only them) trust the sandbox CA."""
        path = str(self.ca.bundle_path)
        return {"SSL_CERT_FILE": path, "REQUESTS_CA_BUNDLE": path}


def compute_truth(dataset: Dataset, spec: ConnectionSpec, failing_ids: Sequence[str]) -> Truth:
    counts: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    unique: set[tuple[str, str]] = set()
    by_org = {(c.country, c.org_number): c for c in dataset.companies}
    for account in dataset.accounts:
        counts["planned"] += 1
        country = str(account.get(spec.salesforce.country_field or "") or spec.salesforce.country or "")
        try:
            org = normalise(country, account.get(spec.salesforce.org_number_field))
        except InvalidOrgNumber:
            counts["invalid"] += 1
            codes["ORGNR_INVALID"] += 1
            continue
        unique.add((country, org))
        company = by_org.get((country, org)) or Company(
            org_number=org, country=country, status=CompanyStatus.NOT_FOUND
        )
        company = registry_view(spec.registry.provider, company)  # what the registry can say of it
        plan = plan_record(account, company, spec.mapping, {})
        if not plan.changes:
            counts["unchanged"] += 1
        elif account["Id"] in failing_ids:
            counts["failed"] += 1
            codes["FIELD_CUSTOM_VALIDATION_EXCEPTION"] += 1
        else:
            counts["updated"] += 1
    return Truth(
        planned=counts["planned"],
        invalid=counts["invalid"],
        unchanged=counts["unchanged"],
        updated=counts["updated"],
        failed=counts["failed"],
        unique_valid_org_numbers=len(unique),
        failure_codes=dict(codes),
    )


def _pick_validation_failures(dataset: Dataset, spec: ConnectionSpec, count: int) -> tuple[str, ...]:
    """A few accounts that will change, chosen deterministically, to be refused by a 'validation rule'."""
    by_org = {(c.country, c.org_number): c for c in dataset.companies}
    chosen: list[str] = []
    for account in dataset.accounts:
        if len(chosen) >= count:
            break
        country = str(account.get("BillingCountryCode") or "")
        try:
            company = by_org.get((country, normalise(country, account.get("Org_Number__c"))))
        except InvalidOrgNumber:
            continue
        if company is None:
            continue
        company = registry_view(spec.registry.provider, company)
        if plan_record(account, company, spec.mapping, {}).changes:
            chosen.append(account["Id"])
    return tuple(chosen)


@contextmanager
def sandbox_stack(
    directory: Path,
    n_accounts: int,
    *,
    seed: int = 7,
    validation_failures: int = 5,
    n_leads: int = 0,
    **dataset_options: Any,
) -> Iterator[Stack]:
    """Start a seeded sandbox world under ``directory`` (CA bundle written there) and stop it afterwards.

    ``n_leads`` more records of the same dataset are seeded as Leads (one in ten converted), not as Accounts.
    """
    ca = SandboxCA(directory)
    dataset = make_dataset(n_accounts + n_leads, seed=seed, **dataset_options)
    leads = leads_from(dataset.accounts[n_accounts:])
    del dataset.accounts[n_accounts:]
    client_secret = "sf-secret-" + os.urandom(12).hex()
    registry_token = "proff-token-" + os.urandom(12).hex()
    salesforce = SandboxSalesforce(
        ca, dataset.accounts, client_id=CLIENT_ID, client_secret=client_secret, leads=leads
    )
    registry = SandboxRegistry(ca, dataset.companies, proff_token=registry_token)
    salesforce.start()
    registry.start()
    stack = Stack(ca, dataset, salesforce, registry, client_secret, registry_token, (), leads)
    stack.validation_failures = _pick_validation_failures(dataset, stack.spec(), validation_failures)
    if stack.validation_failures:
        salesforce.validation_failure(
            stack.validation_failures, "Billing address must be confirmed by Finance"
        )
    try:
        yield stack
    finally:
        salesforce.stop()
        registry.stop()
