"""Issue 12: messages that reach API callers speak the API's words (no CLI flags, no "is a int field"), and
request bodies are strict about integers as they are about booleans."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from worker.api.backfill_request import BackfillRequest
from worker.api.routes.settings import SettingsPatch
from worker.backfill.filters import make_condition
from worker.crm.port import FieldInfo
from worker.errors import InvalidFilter

FIELDS = {
    "NumberOfEmployees": FieldInfo("NumberOfEmployees", "int", True),
    "AnnualRevenue": FieldInfo("AnnualRevenue", "currency", True),
    "Active__c": FieldInfo("Active__c", "boolean", True),
    "Address__c": FieldInfo("Address__c", "address", True),
}
CLI_FLAG = re.compile(r"(^|\s)--[a-z]")


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        (
            "NumberOfEmployees",
            ">",
            "many",
            "'NumberOfEmployees' is an integer field; give a whole number like 42",
        ),
        ("NumberOfEmployees", ">", "4.5", "is an integer field"),
        ("AnnualRevenue", ">", "lots", "is a currency field; give a number"),
        ("Active__c", "<", "true", "is a checkbox"),
        ("Address__c", "=", "x", "cannot be filtered on"),
        ("No_Such__c", "=", "x", "has no field"),
        ("NumberOfEmployees", "like", "4%", "LIKE only works on text fields"),
    ],
)
def test_filter_messages_name_no_cli_flag_and_read_as_english(
    field: str, op: str, value: str, expected: str
) -> None:
    with pytest.raises(InvalidFilter) as caught:
        make_condition(field, op, value, FIELDS)
    message = caught.value.message
    assert expected in message
    assert not CLI_FLAG.search(message) and "is a int" not in message and "a integer" not in message


@pytest.mark.parametrize("value", ["5", 5.5, True, "true", "", [5]])
def test_integer_body_fields_are_strict(value: object) -> None:
    with pytest.raises(ValidationError):
        SettingsPatch.model_validate({"alerts": {"stall_minutes": value}})
    with pytest.raises(ValidationError):
        BackfillRequest.model_validate({"only_failed_run": value})


def test_integers_and_numbers_are_still_accepted() -> None:
    patch = SettingsPatch.model_validate(
        {"alerts": {"stall_minutes": 5, "volume_share": 1, "budget_share": 0.5}}
    )
    assert patch.alerts is not None and patch.alerts.stall_minutes == 5 and patch.alerts.volume_share == 1.0
    assert BackfillRequest.model_validate({"only_failed_run": 7, "dry_run": True}).only_failed_run == 7
