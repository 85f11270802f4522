"""check_mapping: a connection's mapping is refused unless every field exists, is updateable and fits."""

from __future__ import annotations

from typing import Any

import pytest

from worker.connections.spec import ConnectionSpec, parse_spec
from worker.crm.describe_check import check_mapping
from worker.crm.port import FieldInfo
from worker.errors import MappingError

FIELDS = {
    info.name: info
    for info in (
        FieldInfo("Id", "id", updateable=False),
        FieldInfo("Name", "string", updateable=True, length=255),
        FieldInfo("Org_Number__c", "string", updateable=True, length=20),
        FieldInfo("BillingCountryCode", "picklist", updateable=True),
        FieldInfo("Registry_Status__c", "picklist", updateable=True),
        FieldInfo("NumberOfEmployees", "int", updateable=True),
        FieldInfo("AnnualRevenue", "currency", updateable=True),
        FieldInfo("Website", "url", updateable=True),
        FieldInfo("Founded_Date__c", "date", updateable=True),
        FieldInfo("Opt_Out__c", "boolean", updateable=True),
        FieldInfo("CreatedDate", "datetime", updateable=False),
        FieldInfo("Description", "textarea", updateable=True),
    )
}


def spec(mapping: dict[str, str], **salesforce: Any) -> ConnectionSpec:
    return parse_spec(
        {
            "name": "acme",
            "salesforce": {
                "token_url": "https://login.example/services/oauth2/token",
                "client_id": "cid",
                "org_number_field": "Org_Number__c",
                "country_field": "BillingCountryCode",
                **salesforce,
            },
            "registry": {"provider": "brreg", "base_url": "https://registry.example"},
            "mapping": {canonical: {"field": field} for canonical, field in mapping.items()},
        }
    )


def problems(connection: ConnectionSpec) -> str:
    with pytest.raises(MappingError) as caught:
        check_mapping(connection, FIELDS)
    return caught.value.message


def test_a_fitting_mapping_passes() -> None:
    mapping = {
        "name": "Name",
        "status": "Registry_Status__c",
        "employees": "NumberOfEmployees",
        "revenue": "AnnualRevenue",
        "website": "Website",
        "founded": "Founded_Date__c",
        "nace_text": "Description",
    }
    check_mapping(spec(mapping), FIELDS)


def test_field_names_match_case_insensitively_like_salesforce() -> None:
    check_mapping(spec({"name": "name"}, org_number_field="ORG_NUMBER__C"), FIELDS)


def test_missing_key_and_country_fields_are_reported() -> None:
    message = problems(spec({"name": "Name"}, org_number_field="Orgnr__c", country_field="Country__c"))
    assert "org_number_field 'Orgnr__c' does not exist" in message
    assert "country_field 'Country__c' does not exist" in message


def test_fixed_country_needs_no_country_field() -> None:
    check_mapping(spec({"name": "Name"}, country_field=None, country="NO"), FIELDS)


def test_every_problem_is_listed_at_once() -> None:
    message = problems(
        spec({"name": "Nope__c", "founded": "CreatedDate", "employees": "Website", "status": "Opt_Out__c"})
    )
    assert "name → 'Nope__c' does not exist" in message
    assert "founded → 'CreatedDate' is not updateable" in message
    assert "employees → 'Website' has type 'url'" in message
    assert "status → 'Opt_Out__c' has type 'boolean'" in message
    assert message.count(";") == 3


def test_mapping_onto_the_org_number_key_is_refused() -> None:
    assert "would overwrite the org-number key" in problems(spec({"nace_code": "Org_Number__c"}))


@pytest.mark.parametrize(
    ("canonical", "field", "fits"),
    [
        ("name", "Description", True),
        ("name", "NumberOfEmployees", False),
        ("employees", "Name", True),
        ("revenue", "AnnualRevenue", True),
        ("revenue", "Founded_Date__c", False),
        ("founded", "Name", True),
        ("last_updated", "NumberOfEmployees", False),
        ("website", "Registry_Status__c", False),
        ("website", "Website", True),
        ("status", "Description", False),
    ],
)
def test_type_compatibility(canonical: str, field: str, fits: bool) -> None:
    connection = spec({canonical: field})
    if fits:
        check_mapping(connection, FIELDS)
    else:
        assert "has type" in problems(connection)


# --- restricted picklists and lengths (issue 10) ----------------------------------------------------------------


def restricted(name: str, values: list[str], *, type_: str = "picklist") -> FieldInfo:
    entries = [{"value": value, "label": value, "active": True} for value in values]
    return FieldInfo(name, type_, True, 255, extra={"picklistValues": entries, "restrictedPicklist": True})


def test_a_restricted_status_picklist_lacking_some_statuses_is_reported_not_refused() -> None:
    fields = FIELDS | {"Registry_Status__c": restricted("Registry_Status__c", ["active", "dissolved"])}
    warnings = check_mapping(spec({"status": "Registry_Status__c"}), fields)
    (warning,) = warnings
    assert warning.startswith("status → 'Registry_Status__c' is a restricted picklist without bankrupt, ")
    assert "deleted" in warning and "not_found" in warning and "VALUE_DOES_NOT_FIT" in warning
    assert "unknown" not in warning  # never written: the status field is left alone


def test_a_restricted_picklist_with_none_of_the_statuses_is_refused() -> None:
    fields = FIELDS | {"Registry_Status__c": restricted("Registry_Status__c", ["Active", "Closed"])}
    with pytest.raises(MappingError, match="lists none of the values regsync writes"):
        check_mapping(spec({"status": "Registry_Status__c"}), fields)


def test_a_restricted_picklist_with_every_status_passes_silently() -> None:
    values = ["active", "inactive", "dissolved", "bankrupt", "liquidation", "deleted", "not_found"]
    fields = FIELDS | {"Registry_Status__c": restricted("Registry_Status__c", values)}
    assert check_mapping(spec({"status": "Registry_Status__c"}), fields) == []


def test_free_text_onto_a_restricted_picklist_is_reported() -> None:
    fields = FIELDS | {"Description": restricted("Description", ["AS", "ASA"], type_="picklist")}
    (warning,) = check_mapping(spec({"legal_form": "Description"}), fields)
    assert warning == (
        "legal_form → 'Description' is a restricted picklist: registry values outside its 2 value(s) fail "
        "with VALUE_DOES_NOT_FIT"
    )


def test_a_text_field_shorter_than_known_values_is_reported_or_refused() -> None:
    short = FIELDS | {"Description": FieldInfo("Description", "string", True, length=5)}
    (warning,) = check_mapping(spec({"nace_code": "Description"}), short)
    assert "holds 5 characters; longer values (up to 6) fail with VALUE_DOES_NOT_FIT" in warning
    tiny = FIELDS | {"Description": FieldInfo("Description", "string", True, length=4)}
    with pytest.raises(MappingError, match="fewer than any value regsync writes"):
        check_mapping(spec({"status": "Description"}), tiny)
    assert check_mapping(spec({"name": "Name"}), FIELDS) == []
