"""The sandbox org's permission metadata for the integration user: what least-privilege checks query.

Serves ``PermissionSetAssignment``, ``PermissionSet``, ``ObjectPermissions`` and ``FieldPermissions`` through the
same SOQL ``query`` resource as Accounts (field names as in the Salesforce Object Reference; confirmed). Like a
real org, the user's profile appears as a permission set with ``IsOwnedByProfile = true``. By default the user
holds what regsync's demo mapping needs and nothing more: Read + Edit on Account and Edit on the mapped fields.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from worker.sandbox.soql import Query

PERMISSION_FIELDS: dict[str, list[str]] = {
    "PermissionSetAssignment": ["Id", "AssigneeId", "PermissionSetId"],
    "PermissionSet": [
        "Id",
        "Name",
        "Label",
        "IsOwnedByProfile",
        "PermissionsModifyAllData",
        "PermissionsViewAllData",
    ],
    "ObjectPermissions": [
        "Id",
        "ParentId",
        "SobjectType",
        "PermissionsRead",
        "PermissionsCreate",
        "PermissionsEdit",
        "PermissionsDelete",
        "PermissionsViewAllRecords",
        "PermissionsModifyAllRecords",
    ],
    "FieldPermissions": ["Id", "ParentId", "SobjectType", "Field", "PermissionsRead", "PermissionsEdit"],
}
#: Account fields the default permission set may edit: those of the sandbox stack's demo mapping.
DEMO_EDITABLE = (
    "Name",
    "Registry_Status__c",
    "Legal_Form__c",
    "NumberOfEmployees",
    "BillingCity",
    "Industry_Code__c",
    "Website",
)
_RIGHTS = ("Read", "Create", "Edit", "Delete", "ViewAllRecords", "ModifyAllRecords")
_PREFIX = {
    "PermissionSetAssignment": "0Pa",
    "PermissionSet": "0PS",
    "ObjectPermissions": "110",
    "FieldPermissions": "01k",
}


class PermissionStore:
    """Permission rows by object; thread-safe."""

    def __init__(self, user_id: str) -> None:
        self._lock = threading.Lock()
        self._user_id = user_id
        self._rows: dict[str, list[dict[str, Any]]] = {name: [] for name in PERMISSION_FIELDS}
        profile = self.assign("X00e000000000001AAQ", "Minimum Access - API Only Integrations", profile=True)
        default = self.assign("Regsync_Integration", "Regsync Integration")
        self.grant_object(default, "Account", ("Read", "Edit"))
        self.grant_fields(default, [f"Account.{name}" for name in DEMO_EDITABLE])
        self.profile_set_id = profile

    def assign(
        self,
        name: str,
        label: str | None = None,
        *,
        profile: bool = False,
        modify_all_data: bool = False,
        view_all_data: bool = False,
    ) -> str:
        """Create a permission set, assign it to the integration user; returns its Id."""
        set_id = self._add(
            "PermissionSet",
            Name=name,
            Label=label or name.replace("_", " "),
            IsOwnedByProfile=profile,
            PermissionsModifyAllData=modify_all_data,
            PermissionsViewAllData=view_all_data,
        )
        self._add("PermissionSetAssignment", AssigneeId=self._user_id, PermissionSetId=set_id)
        return set_id

    def unassign(self, set_id: str) -> None:
        """Remove the permission set's assignment to the integration user (the set itself stays, as in an org)."""
        with self._lock:
            self._rows["PermissionSetAssignment"] = [
                row for row in self._rows["PermissionSetAssignment"] if row["PermissionSetId"] != set_id
            ]

    def grant_object(self, set_id: str, sobject: str, rights: Iterable[str]) -> None:
        """Object rights (``Read``, ``Create``, ``Edit``, ``Delete``, ``ViewAllRecords``, ``ModifyAllRecords``)."""
        given = set(rights)
        unknown = given - set(_RIGHTS)
        if unknown:
            raise ValueError(f"unknown object right(s) {sorted(unknown)}; known: {_RIGHTS}")
        self._add(
            "ObjectPermissions",
            ParentId=set_id,
            SobjectType=sobject,
            **{f"Permissions{right}": right in given for right in _RIGHTS},
        )

    def grant_fields(self, set_id: str, fields: Iterable[str], *, edit: bool = True) -> None:
        """Field rights on ``Object.Field`` names (read always, edit unless ``edit=False``)."""
        for field in fields:
            sobject = field.split(".", 1)[0]
            self._add(
                "FieldPermissions",
                ParentId=set_id,
                SobjectType=sobject,
                Field=field,
                PermissionsRead=True,
                PermissionsEdit=edit,
            )

    def query(self, query: Query, version: str) -> dict[str, Any]:
        """One object's rows that match ``query``, in one page (these tables are small)."""
        with self._lock:
            rows = list(self._rows[query.sobject])
        found = query.run(rows)
        if query.count:
            return {"totalSize": len(found), "done": True, "records": []}
        records = [_project(query.sobject, row, query.fields, version) for row in found]
        return {"totalSize": len(records), "done": True, "records": records}

    def _add(self, sobject: str, **values: Any) -> str:
        with self._lock:
            rows = self._rows[sobject]
            row_id = f"{_PREFIX[sobject]}{len(rows) + 1:012d}AAA"
            rows.append({"Id": row_id, **values})
            return row_id


def _project(sobject: str, row: Mapping[str, Any], fields: Iterable[str], version: str) -> dict[str, Any]:
    attributes = {"type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{row['Id']}"}
    return {"attributes": attributes, **{name: row.get(name) for name in fields}}
