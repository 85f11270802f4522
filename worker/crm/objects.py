"""What differs between the Salesforce objects a connection may sync: which records are in scope, which
headers every write carries, and which fields hold a company's name and address by default.

Account and Lead are standard objects; a custom object (``Name__c``-style API name ending ``__c``) follows the
Account rules with its own field names. PROTOCOLS.md 3.8: converted Leads are never read or written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The per-record code Salesforce gives a write to a Lead that was converted (PROTOCOLS.md 3.4).
CONVERTED_LEAD = "CANNOT_UPDATE_CONVERTED_LEAD"
#: The message regsync records for it (Salesforce's own text is not needed and may change).
CONVERTED_LEAD_MESSAGE = "the Lead was converted while the run ran; converted Leads are never written"
#: Every write says no to assignment rules: regsync must never re-route a record (PROTOCOLS.md 3.5: the
#: header applies on update of Accounts, Cases and Leads, and TRUE is the default when it is absent).
WRITE_HEADERS = {"Sforce-Auto-Assign": "FALSE"}
_CUSTOM = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,36}__c$")


@dataclass(frozen=True, slots=True)
class ObjectRules:
    """The facts of one object that regsync's reads and writes depend on."""

    name: str
    #: A SOQL condition every read of the object adds (None: every record is in scope).
    scope: str | None = None
    #: Default fields for name matching: the company name, postal code and city.
    name_field: str = "Name"
    postal_code_field: str | None = None
    city_field: str | None = None


_STANDARD = {
    "Account": ObjectRules(
        "Account", name_field="Name", postal_code_field="BillingPostalCode", city_field="BillingCity"
    ),
    "Lead": ObjectRules(
        "Lead",
        scope="IsConverted = false",
        name_field="Company",
        postal_code_field="PostalCode",
        city_field="City",
    ),
}


def is_object_name(name: str) -> bool:
    """True for Account, Lead or a custom object's API name (``Registry_Company__c``)."""
    return name in _STANDARD or bool(_CUSTOM.match(name))


def rules_for(name: str) -> ObjectRules:
    """The rules of ``name`` (a custom object: Account's, with no address fields known)."""
    return _STANDARD.get(name) or ObjectRules(name)


def scoped(object_name: str, where: str | None) -> str | None:
    """``where`` narrowed to the records of ``object_name`` regsync may touch (for a Lead: not converted).

    ``where`` is put in parentheses, so that an OR inside it cannot widen the scope.
    """
    scope = rules_for(object_name).scope
    if scope is None:
        return where
    return f"({where}) AND {scope}" if where else scope
