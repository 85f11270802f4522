"""Canonical fields a mapping can choose: full NACE text, each address on its own, unknown status never written."""

from __future__ import annotations

import pytest

from worker.company import CANONICAL_FIELDS, Address, Company, CompanyStatus, canonical_value
from worker.connections.spec import FieldMapping, Policy
from worker.crm.describe_check import COMPATIBLE_TYPES
from worker.sync.policies import plan_record

VISIT = Address(street="Kong Oscars gate 20", postal_code="5003", city="BERGEN", country="NO")
POST = Address(street="Postboks 77", postal_code="5804", city="BERGEN", country="NO")


def _company(**values: object) -> Company:
    base: dict[str, object] = {
        "org_number": "915238475",
        "country": "NO",
        "name": "FJORDLYS DATA AS",
        "business_address": VISIT,
        "postal_address": POST,
        "nace_code": "62.010",
        "nace_text": "Programmeringstjenester",
    }
    return Company.model_validate(base | values)


def test_every_canonical_field_has_compatible_salesforce_types() -> None:
    assert set(COMPATIBLE_TYPES) == set(CANONICAL_FIELDS)


def test_new_field_names_are_the_documented_ones() -> None:
    expected = {"nace_full"} | {
        f"{which}_{part}"
        for which in ("business", "postal")
        for part in ("street", "postal_code", "city", "country")
    }
    assert expected <= set(CANONICAL_FIELDS)


def test_nace_full_is_code_and_text_as_proff_sends_it() -> None:
    assert canonical_value(_company(), "nace_full") == "62.010 Programmeringstjenester"
    assert canonical_value(_company(), "nace_code") == "62.010"
    assert canonical_value(_company(), "nace_text") == "Programmeringstjenester"


def test_nace_full_without_text_is_the_code_and_without_code_nothing() -> None:
    assert canonical_value(_company(nace_text=None), "nace_full") == "62.010"
    assert canonical_value(_company(nace_code=None), "nace_full") is None


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("postal_street", "Postboks 77"),
        ("postal_postal_code", "5804"),
        ("postal_city", "BERGEN"),
        ("postal_country", "NO"),
        ("business_street", "Kong Oscars gate 20"),
        ("business_postal_code", "5003"),
        ("business_city", "BERGEN"),
        ("business_country", "NO"),
        ("street", "Kong Oscars gate 20"),  # the older fields: business address first
        ("postal_code", "5003"),
        ("city", "BERGEN"),
        ("address_country", "NO"),
    ],
)
def test_each_address_field_reads_its_own_address(field: str, expected: str) -> None:
    assert canonical_value(_company(), field) == expected


def test_older_address_fields_fall_back_to_the_postal_address_and_new_ones_do_not() -> None:
    company = _company(business_address=None)

    assert canonical_value(company, "street") == "Postboks 77"
    assert canonical_value(company, "business_street") is None
    assert canonical_value(_company(postal_address=None), "postal_street") is None


def test_unknown_status_is_never_written_but_other_fields_are() -> None:
    company = _company(status=CompanyStatus.UNKNOWN)
    mapping = {
        "status": FieldMapping(field="Registry_Status__c", policy=Policy.OVERWRITE),
        "name": FieldMapping(field="Name", policy=Policy.OVERWRITE),
        "nace_full": FieldMapping(field="Industry", policy=Policy.OVERWRITE),
    }
    record = {"Id": "001", "Registry_Status__c": "active", "Name": "Old", "Industry": None}

    plan = plan_record(record, company, mapping, {})

    assert canonical_value(company, "status") is None
    assert plan.changes == {"Name": "FJORDLYS DATA AS", "Industry": "62.010 Programmeringstjenester"}


@pytest.mark.parametrize("status", [CompanyStatus.INACTIVE, CompanyStatus.NOT_FOUND, CompanyStatus.DELETED])
def test_known_statuses_are_written(status: CompanyStatus) -> None:
    assert canonical_value(_company(status=status), "status") == status.value
