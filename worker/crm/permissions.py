"""Least privilege: the integration user's effective rights in Salesforce, and those beyond the mapping's needs.

Read with four small SOQL queries (PermissionSetAssignment → PermissionSet, ObjectPermissions, FieldPermissions;
the user's profile is one of the permission sets, ``IsOwnedByProfile``). regsync needs Read and Edit on its
object and Edit on the mapped fields. Reported as excess: Modify All Data, View All Data, Create / Delete /
Modify All on its object, any create/edit/delete right on another object, and Edit on unmapped fields.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from worker.connections.spec import ConnectionSpec
from worker.crm.port import CrmRecord
from worker.crm.soql import build_soql, soql_quote

_SET_FIELDS = (
    "Id",
    "Name",
    "Label",
    "IsOwnedByProfile",
    "PermissionsModifyAllData",
    "PermissionsViewAllData",
)
_OBJECT_RIGHTS = ("Create", "Edit", "Delete", "ModifyAllRecords")
_OWN_OBJECT_EXCESS = ("Create", "Delete", "ModifyAllRecords")
_RIGHT_WORDS = {"Create": "create", "Edit": "edit", "Delete": "delete", "ModifyAllRecords": "Modify All"}


class SoqlReader(Protocol):
    """What reading permissions needs from a Salesforce client."""

    @property
    def user_id(self) -> str | None: ...

    def query(self, soql: str) -> list[CrmRecord]: ...


@dataclass(frozen=True, slots=True)
class PermissionSet:
    id: str
    name: str
    label: str
    profile: bool

    @property
    def display(self) -> str:
        """How a report names it: the admin finds a profile by its label, a permission set by its API name."""
        return f"profile {self.label!r}" if self.profile else f"permission set {self.name!r}"


@dataclass(frozen=True, slots=True)
class Excess:
    """One right beyond what the mapping needs, and where it comes from."""

    granted_by: PermissionSet
    right: str

    def __str__(self) -> str:
        return f"{self.right} (from {self.granted_by.display})"


@dataclass(frozen=True, slots=True)
class PrivilegeReport:
    """The integration user's permission sets and their excess rights (empty: least privilege holds)."""

    user_id: str
    permission_sets: tuple[PermissionSet, ...]
    excess: tuple[Excess, ...]

    def offenders(self) -> list[str]:
        """The permission sets (or profiles) to fix, each named once, in order."""
        return list(dict.fromkeys(excess.granted_by.display for excess in self.excess))


def read_privileges(client: SoqlReader, spec: ConnectionSpec) -> PrivilegeReport | None:
    """The user's rights, compared with what ``spec`` needs; None when the token named no user.

    Raises:
        CrmError: A query failed (e.g. the user may not read setup objects: INSUFFICIENT_ACCESS, INVALID_TYPE).
    """
    user = client.user_id
    if user is None:
        return None
    where = f"AssigneeId = {soql_quote(user)}"
    assigned = client.query(build_soql("PermissionSetAssignment", ["PermissionSetId"], where))
    ids = sorted({str(row["PermissionSetId"]) for row in assigned})
    if not ids:
        return PrivilegeReport(user, (), ())
    within = f"ParentId IN ({', '.join(soql_quote(i) for i in ids)})"
    sets = client.query(
        build_soql("PermissionSet", _SET_FIELDS, f"Id IN ({', '.join(map(soql_quote, ids))})")
    )
    object_fields = ["ParentId", "SobjectType", *(f"Permissions{right}" for right in _OBJECT_RIGHTS)]
    objects = client.query(build_soql("ObjectPermissions", object_fields, within))
    edits = client.query(
        build_soql(
            "FieldPermissions", ["ParentId", "SobjectType", "Field"], f"{within} AND PermissionsEdit = true"
        )
    )
    by_id = {str(row["Id"]): _permission_set(row) for row in sets}
    return PrivilegeReport(
        user, tuple(by_id.values()), tuple(excess_rights(by_id, sets, objects, edits, spec))
    )


def excess_rights(
    by_id: dict[str, PermissionSet],
    sets: Sequence[CrmRecord],
    objects: Sequence[CrmRecord],
    edits: Sequence[CrmRecord],
    spec: ConnectionSpec,
) -> list[Excess]:
    """Every right in the query answers that the mapping of ``spec`` does not need (pure)."""
    found = [excess for row in sets for excess in _all_data_excess(by_id[str(row["Id"])], row)]
    own = spec.salesforce.object.lower()
    for row in objects:
        holder = by_id.get(str(row["ParentId"]))
        found += _object_excess(holder, row, own) if holder is not None else []
    return found + _field_excess(by_id, edits, spec)


def _all_data_excess(granted: PermissionSet, row: CrmRecord) -> list[Excess]:
    names = {"PermissionsModifyAllData": "Modify All Data", "PermissionsViewAllData": "View All Data"}
    return [Excess(granted, label) for key, label in names.items() if row.get(key)]


def _object_excess(granted: PermissionSet, row: CrmRecord, own: str) -> list[Excess]:
    sobject = str(row.get("SobjectType") or "")
    rights = _OWN_OBJECT_EXCESS if sobject.lower() == own else _OBJECT_RIGHTS
    held = [_RIGHT_WORDS[right] for right in rights if row.get(f"Permissions{right}")]
    return [Excess(granted, f"{', '.join(held)} on {sobject}")] if held else []


def _field_excess(
    by_id: dict[str, PermissionSet], edits: Sequence[CrmRecord], spec: ConnectionSpec
) -> list[Excess]:
    """Edit on fields of the object that the mapping does not write, and on other objects' fields (counted)."""
    own = spec.salesforce.object.lower()
    mapped = {f"{own}.{mapping.field.lower()}" for mapping in spec.mapping.values()}
    unmapped: dict[str, list[str]] = defaultdict(list)
    elsewhere: dict[tuple[str, str], int] = defaultdict(int)
    for row in edits:
        field, parent = str(row.get("Field") or ""), str(row["ParentId"])
        if parent not in by_id or field.lower() in mapped:
            continue
        if field.lower().startswith(f"{own}."):
            unmapped[parent].append(field.split(".", 1)[1])
        else:
            elsewhere[(parent, str(row.get("SobjectType") or field.split(".", 1)[0]))] += 1
    found = [
        Excess(by_id[p], f"edit on unmapped {spec.salesforce.object} field(s) {', '.join(sorted(names))}")
        for p, names in unmapped.items()
    ]
    return found + [
        Excess(by_id[p], f"edit on {n} field(s) of {sobject}") for (p, sobject), n in elsewhere.items()
    ]


def _permission_set(row: dict[str, Any]) -> PermissionSet:
    name = str(row.get("Name") or row["Id"])
    return PermissionSet(
        str(row["Id"]), name, str(row.get("Label") or name), bool(row.get("IsOwnedByProfile"))
    )
