"""The sandbox org's Account and Lead schemas: what ``describe`` answers and how written values are checked."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

_TEXT_TYPES = frozenset({"string", "textarea", "picklist", "url", "phone", "email", "id", "reference"})


@dataclass(frozen=True, slots=True)
class SandboxField:
    name: str
    type: str
    label: str
    length: int = 0
    updateable: bool = True
    nillable: bool = True
    picklist: tuple[str, ...] = ()
    restricted: bool = False  # a restricted picklist refuses values it does not list

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "length": self.length,
            "updateable": self.updateable,
            "createable": self.updateable,
            "nillable": self.nillable,
            "custom": self.custom,
            "restrictedPicklist": self.restricted,
            "picklistValues": [
                {"value": value, "label": value, "active": True, "defaultValue": False}
                for value in self.picklist
            ],
        }


_STATUSES = ("active", "dissolved", "bankrupt", "liquidation", "deleted", "not_found", "inactive")

ACCOUNT_FIELDS: tuple[SandboxField, ...] = (
    SandboxField("Id", "id", "Account ID", 18, updateable=False, nillable=False),
    SandboxField("Name", "string", "Account Name", 255, nillable=False),
    SandboxField("Org_Number__c", "string", "Organisation Number", 20),
    # Country and state picklists are restricted in every org that enables them (confirmed); a custom
    # picklist is restricted only when its admin ticked the box, so Registry_Status__c is not, by default.
    SandboxField(
        "BillingCountryCode",
        "picklist",
        "Billing Country Code",
        10,
        picklist=("NO", "SE", "DK", "FI"),
        restricted=True,
    ),
    SandboxField("BillingCountry", "string", "Billing Country", 80),
    SandboxField("BillingStreet", "textarea", "Billing Street", 255),
    SandboxField("BillingCity", "string", "Billing City", 40),
    SandboxField("BillingPostalCode", "string", "Billing Zip/Postal Code", 20),
    SandboxField("Registry_Status__c", "picklist", "Registry Status", 255, picklist=_STATUSES),
    SandboxField("Legal_Form__c", "string", "Legal Form", 100),
    SandboxField("NumberOfEmployees", "int", "Employees"),
    SandboxField("AnnualRevenue", "currency", "Annual Revenue"),
    SandboxField("Website", "url", "Website", 255),
    SandboxField("Phone", "phone", "Account Phone", 40),
    # Account's standard Industry picklist, values left open: an org mapping NACE text to it replaced the
    # standard values (an assumption of this sandbox, as is the open value set).
    SandboxField("Industry", "picklist", "Industry", 255),
    SandboxField("Industry_Code__c", "string", "Industry Code", 20),
    SandboxField("Industry_Description__c", "string", "Industry Description", 255),
    SandboxField("Founded_Date__c", "date", "Founded"),
    SandboxField("Registry_Last_Updated__c", "date", "Registry Last Updated"),
    SandboxField("Registry_Sync_Opt_Out__c", "boolean", "Opt Out of Registry Sync", nillable=False),
    SandboxField("Description", "textarea", "Account Description", 32000),
    SandboxField("CreatedDate", "datetime", "Created Date", updateable=False, nillable=False),
    SandboxField("LastModifiedDate", "datetime", "Last Modified Date", updateable=False, nillable=False),
    # Set at creation and moved by every write, a person's or a process's (PROTOCOLS.md 3.7).
    SandboxField("SystemModstamp", "datetime", "System Modstamp", updateable=False, nillable=False),
)
ACCOUNT_BY_NAME = {field.name: field for field in ACCOUNT_FIELDS}
ACCOUNT_BY_LOWER = {field.name.lower(): field for field in ACCOUNT_FIELDS}

#: Lead's standard fields as the Object Reference names them (Company is the company's name; Name is a
#: read-only compound of FirstName and LastName), plus the same custom fields as the sandbox Account.
LEAD_FIELDS: tuple[SandboxField, ...] = (
    SandboxField("Id", "id", "Lead ID", 18, updateable=False, nillable=False),
    SandboxField("FirstName", "string", "First Name", 40),
    SandboxField("LastName", "string", "Last Name", 80, nillable=False),
    SandboxField("Company", "string", "Company", 255, nillable=False),
    SandboxField("Status", "picklist", "Lead Status", 255, picklist=("Open", "Working", "Qualified")),
    SandboxField("Org_Number__c", "string", "Organisation Number", 20),
    SandboxField(
        "CountryCode", "picklist", "Country Code", 10, picklist=("NO", "SE", "DK", "FI"), restricted=True
    ),
    SandboxField("Street", "textarea", "Street", 255),
    SandboxField("City", "string", "City", 40),
    SandboxField("PostalCode", "string", "Zip/Postal Code", 20),
    SandboxField("Registry_Status__c", "picklist", "Registry Status", 255, picklist=_STATUSES),
    SandboxField("Legal_Form__c", "string", "Legal Form", 100),
    SandboxField("NumberOfEmployees", "int", "No. of Employees"),
    SandboxField("AnnualRevenue", "currency", "Annual Revenue"),
    SandboxField("Website", "url", "Website", 255),
    SandboxField("Phone", "phone", "Phone", 40),
    SandboxField("Industry", "picklist", "Industry", 255),
    SandboxField("Industry_Code__c", "string", "Industry Code", 20),
    SandboxField("Registry_Sync_Opt_Out__c", "boolean", "Opt Out of Registry Sync", nillable=False),
    SandboxField("IsConverted", "boolean", "Converted", updateable=False, nillable=False),
    SandboxField("ConvertedDate", "date", "Converted Date", updateable=False),
    SandboxField("CreatedDate", "datetime", "Created Date", updateable=False, nillable=False),
    SandboxField("LastModifiedDate", "datetime", "Last Modified Date", updateable=False, nillable=False),
    SandboxField("SystemModstamp", "datetime", "System Modstamp", updateable=False, nillable=False),
)
#: Key prefixes of record Ids (the first three characters), per object.
ID_PREFIX = {"Account": "001", "Lead": "00Q"}


def describe_body(
    version: str, fields: tuple[SandboxField, ...] = ACCOUNT_FIELDS, sobject: str = "Account"
) -> dict[str, Any]:
    """``GET sobjects/<object>/describe`` as Salesforce shapes it (the parts a client reads)."""
    return {
        "name": sobject,
        "label": sobject,
        "keyPrefix": ID_PREFIX.get(sobject, "a00"),
        "queryable": True,
        "updateable": True,
        "urls": {"describe": f"/services/data/v{version}/sobjects/{sobject}/describe"},
        "fields": [field.describe() for field in fields],
    }


def value_error(field: SandboxField, value: Any) -> tuple[str, str] | None:
    """``(statusCode, message)`` if ``value`` cannot be written to ``field``, else None."""
    if value is None:
        if field.nillable:
            return None
        return "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{field.name}]"
    if field.type in _TEXT_TYPES:
        return _text_error(field, value)
    if not _fits(field.type, value):
        return "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{field.label}: value not of required type: {value}"
    return None


def _text_error(field: SandboxField, value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str):
        return "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{field.label}: value not of required type: {value}"
    if field.restricted and value not in field.picklist:
        # The code is confirmed in client code; the message's wording is an assumption.
        return (
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{field.label}: bad value for restricted picklist field: {value[:40]}",
        )
    if field.length and len(value) > field.length:
        return (
            "STRING_TOO_LONG",
            f"{field.label}: data value too large: {value[:40]} (max length={field.length})",
        )
    return None


def _fits(kind: str, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("double", "currency", "percent"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "date":
        return isinstance(value, str) and _parses(dt.date.fromisoformat, value)
    if kind == "datetime":
        return isinstance(value, str) and _parses(dt.datetime.fromisoformat, value)
    return True


def _parses(parser: Any, value: str) -> bool:
    try:
        parser(value)
    except ValueError:
        return False
    return True
