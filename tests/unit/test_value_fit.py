"""value_fit: restricted picklist values and text lengths are checked against the describe before a write."""

from __future__ import annotations

from worker.crm.port import CrmRecord, FieldInfo
from worker.crm.value_fit import record_problem, refusals, restricted_values, value_problem


def picklist(values: list[str], *, restricted: bool = True, inactive: tuple[str, ...] = ()) -> FieldInfo:
    entries = [{"value": v, "label": v, "active": v not in inactive} for v in values]
    extra = {"picklistValues": entries, "restrictedPicklist": restricted}
    return FieldInfo("Status__c", "picklist", True, length=255, extra=extra)


def test_only_active_values_of_a_restricted_picklist_fit() -> None:
    status = picklist(["active", "dissolved", "old"], inactive=("old",))
    assert restricted_values(status) == frozenset({"active", "dissolved"})
    assert value_problem(status, "active") is None
    assert value_problem(status, "Active") == "Status__c: 'Active' is not a value of its restricted picklist"
    assert value_problem(status, "old") is not None
    assert value_problem(status, None) is None


def test_an_unrestricted_picklist_takes_any_value() -> None:
    assert value_problem(picklist(["active"], restricted=False), "bankrupt") is None


def test_each_value_of_a_multipicklist_must_be_listed() -> None:
    info = FieldInfo("Tags__c", "multipicklist", True, 4099, extra=picklist(["a", "b"]).extra)
    assert value_problem(info, "a;b") is None
    assert value_problem(info, "a;c") == "Tags__c: 'c' is not a value of its restricted picklist"


def test_text_longer_than_the_field_does_not_fit_and_the_message_omits_the_value() -> None:
    name = FieldInfo("Name", "string", True, length=10)
    assert value_problem(name, "x" * 10) is None
    problem = value_problem(name, "Secretive Company Name AS")
    assert problem == "Name: the value has 25 characters, the field holds at most 10"
    assert value_problem(FieldInfo("NumberOfEmployees", "int", True, length=0), 10**9) is None


def test_records_that_do_not_fit_are_listed_by_position() -> None:
    fields = {"name": FieldInfo("Name", "string", True, length=5), "status__c": picklist(["active"])}
    batch: list[CrmRecord] = [
        {"Id": "001A", "Name": "ok"},
        {"Id": "001B", "Status__c": "gone"},
        {"Id": "001C", "NAME": "far too long", "Unknown__c": 1},
    ]
    refused = refusals(batch, fields)
    assert sorted(refused) == [1, 2]
    assert refused[1].record_id == "001B" and refused[1].error_code == "VALUE_DOES_NOT_FIT"
    assert record_problem({"Id": "x" * 99}, {"id": FieldInfo("Id", "id", False, length=18)}) is None
