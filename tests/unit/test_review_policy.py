"""The ``review`` field policy (a pure function): such a change is held back with its old and new value."""

from __future__ import annotations

from worker.company import Company, CompanyStatus
from worker.connections.spec import FieldMapping, Policy
from worker.sync.policies import plan_record

MAPPING = {
    "name": FieldMapping(field="Name", policy=Policy.REVIEW),
    "employees": FieldMapping(field="NumberOfEmployees", policy=Policy.OVERWRITE),
    "website": FieldMapping(field="Website", policy=Policy.REVIEW),
}


def _company(**values: object) -> Company:
    return Company(org_number="923609016", country="NO", status=CompanyStatus.ACTIVE, **values)  # type: ignore[arg-type]


def test_a_review_fields_change_is_held_back_with_both_values_and_never_written() -> None:
    record = {"Id": "001A", "Name": "Old AS", "NumberOfEmployees": 3, "Website": " https://x.no "}
    plan = plan_record(record, _company(name="New AS", employees=5, website="https://x.no"), MAPPING, {})
    assert plan.changes == {"NumberOfEmployees": 5}
    assert plan.review == {
        "name": ("Old AS", "New AS")
    }  # keyed by canonical field; an equal website is no change


def test_a_value_the_registry_does_not_give_is_never_sent_to_review() -> None:
    plan = plan_record({"Id": "001A", "Name": "Old AS"}, _company(name=None), MAPPING, {})
    assert plan.review == {} and plan.changes == {}
