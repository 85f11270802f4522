"""Sandbox Leads: dataset records dressed as Leads (Company, CountryCode, City ...), some of them converted.

A Lead connection maps the same canonical fields onto Lead's field names (:data:`LEAD_MAPPING`). Converted Leads
hold a stale value on purpose: a run that read or wrote one would change it, so a test can see that none was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from worker.sandbox.dataset import salesforce_id

#: Account field → the Lead field holding the same thing; fields Lead lacks are dropped.
_TO_LEAD = {
    "Name": "Company",
    "BillingCountryCode": "CountryCode",
    "BillingCity": "City",
    "BillingStreet": "Street",
    "BillingPostalCode": "PostalCode",
    "Org_Number__c": "Org_Number__c",
    "Registry_Status__c": "Registry_Status__c",
    "Legal_Form__c": "Legal_Form__c",
    "NumberOfEmployees": "NumberOfEmployees",
    "Website": "Website",
    "Industry_Code__c": "Industry_Code__c",
    "Registry_Sync_Opt_Out__c": "Registry_Sync_Opt_Out__c",
}
LEAD_MAPPING: dict[str, dict[str, str]] = {
    "name": {"field": "Company", "policy": "overwrite"},
    "status": {"field": "Registry_Status__c", "policy": "overwrite"},
    "legal_form": {"field": "Legal_Form__c", "policy": "overwrite"},
    "employees": {"field": "NumberOfEmployees", "policy": "overwrite"},
    "city": {"field": "City", "policy": "overwrite"},
    "nace_code": {"field": "Industry_Code__c", "policy": "overwrite"},
    "website": {"field": "Website", "policy": "fill_blank"},
}
#: One Lead in this many is converted (deterministic by position).
CONVERTED_EVERY = 10
#: What a converted Lead holds in Legal_Form__c: no registry says it, so any sync would overwrite it.
CONVERTED_MARK = "CONVERTED-STALE"


def as_lead(account: Mapping[str, Any], index: int, *, converted: bool = False) -> dict[str, Any]:
    """``account`` as a Lead (a fresh ``00Q`` Id); a converted one with a stale legal form."""
    lead = {_TO_LEAD[name]: value for name, value in account.items() if name in _TO_LEAD}
    lead.update(Id=salesforce_id("00Q", 2_000_000 + index), LastName=f"Contact {index}", Status="Open")
    if converted:
        lead.update(IsConverted=True, ConvertedDate="2026-01-15", Legal_Form__c=CONVERTED_MARK)
    return lead


def leads_from(accounts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every ``accounts`` record as a Lead; one in :data:`CONVERTED_EVERY` converted."""
    return [
        as_lead(account, index, converted=index % CONVERTED_EVERY == CONVERTED_EVERY - 1)
        for index, account in enumerate(accounts)
    ]
