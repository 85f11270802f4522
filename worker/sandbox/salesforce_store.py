"""The sandbox org's records of one object (Account, Lead): query cursors, sObject Collections retrieve/update,
write faults, and Lead conversion (a converted Lead refuses writes with CANNOT_UPDATE_CONVERTED_LEAD).

Thread-safe: every read of shared state and every write happens under one lock.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker.sandbox.salesforce_schema import (
    ACCOUNT_BY_LOWER,
    ACCOUNT_FIELDS,
    ID_PREFIX,
    SandboxField,
    value_error,
)
from worker.sandbox.soql import Query

PAGE_SIZE = 2000
COLLECTION_MAX = 200
RETRIEVE_MAX = 2000
_MAX_CURSORS = 100
_LOCK_MESSAGE = "unable to obtain exclusive access to this record or 1 records: {id}"
_ROLLED_BACK = (
    "Record rolled back because not all records were valid and the request was using AllOrNone header"
)

Error = tuple[str, str, list[str]]  # (statusCode, message, fields)


class ApiError(Exception):
    """A whole-request error: HTTP ``status`` with Salesforce's ``[{"message", "errorCode"}]`` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One successful write: which fields it changed, ``{field: (old, new)}`` (empty if nothing changed)."""

    record_id: str
    changed: dict[str, tuple[Any, Any]]
    at: float


@dataclass(slots=True)
class _Cursor:
    fields: tuple[str, ...]
    records: list[Mapping[str, Any]]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _stamp() -> str:
    """A SystemModstamp as Salesforce writes it, to the millisecond (one fixed form, so text order is time order)."""
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def field_named(
    name: str, by_lower: Mapping[str, SandboxField] = ACCOUNT_BY_LOWER, sobject: str = "Account"
) -> SandboxField:
    """The schema field for a (case-insensitive) API name, or a 400 INVALID_FIELD."""
    field = by_lower.get(name.strip().lower())
    if field is None:
        raise ApiError(400, "INVALID_FIELD", f"No such column '{name.strip()}' on sObject of type {sobject}")
    return field


class AccountStore:
    """The records of one object (Account unless ``sobject`` and ``schema`` say otherwise)."""

    def __init__(
        self,
        accounts: Iterable[Mapping[str, Any]],
        *,
        sobject: str = "Account",
        schema: tuple[SandboxField, ...] = ACCOUNT_FIELDS,
    ) -> None:
        self.sobject = sobject
        self._by_name = {field.name: field for field in schema}
        self._by_lower = {field.name.lower(): field for field in schema}
        #: Leads a person converts just before a write reaches them (``convert_before_write``).
        self._convert_on_write: set[str] = set()
        self._lock = threading.RLock()
        self._records: dict[str, dict[str, Any]] = {}
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._validation: dict[str, str] = {}
        self._locked: set[str] = set()
        self._lock_share = (0.0, 0)  # (share of records locked on their first write attempt, seed)
        self._first_tried: set[str] = set()
        self._fields = dict(self._by_name)
        self._created = _now()
        self.writes: Counter[str] = Counter()
        self.locks_injected: Counter[str] = Counter()
        self.changes: list[FieldChange] = []
        self._stamp: Callable[[], str] = lambda: self._created  # the seeded records were created with the org
        for account in accounts:
            self.add(account)
        self._stamp = _stamp

    # --- records -------------------------------------------------------------------------------------------

    def add(self, account: Mapping[str, Any]) -> str:
        """Add one record (an Id is generated when missing); unknown field names are a ValueError."""
        unknown = sorted(name for name in account if name not in self._by_name)
        if unknown:
            raise ValueError(
                f"the sandbox {self.sobject} has no field(s) {unknown}; see salesforce_schema.py"
            )
        record = dict(account)
        with self._lock:
            prefix = ID_PREFIX.get(self.sobject, "a00")
            record.setdefault("Id", f"{prefix}{len(self._records) + 1:012d}AAA")
            record.setdefault("CreatedDate", self._created)
            record.setdefault("LastModifiedDate", self._created)
            record.setdefault("SystemModstamp", self._stamp())
            for flag in ("Registry_Sync_Opt_Out__c", "IsConverted"):
                if flag in self._by_name:
                    record.setdefault(flag, False)
            self._records[record["Id"]] = record
        return str(record["Id"])

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A deep copy of every record, Id → fields."""
        with self._lock:
            return copy.deepcopy(self._records)

    def edit(self, record_id: str, **values: Any) -> None:
        """A person edits a record in the UI: values change, LastModifiedDate and SystemModstamp move, ``writes``
        does not."""
        with self._lock:
            self._records[record_id].update(values, LastModifiedDate=_now(), SystemModstamp=_stamp())

    def convert(self, record_ids: Iterable[str]) -> None:
        """A person converts Leads: IsConverted becomes true and SystemModstamp moves; writes then fail."""
        with self._lock:
            for record_id in record_ids:
                self._records[record_id].update(
                    IsConverted=True,
                    ConvertedDate=_now()[:10],
                    LastModifiedDate=_now(),
                    SystemModstamp=_stamp(),
                )

    def convert_before_write(self, record_ids: Iterable[str]) -> None:
        """These Leads are converted the moment a write reaches them (a Lead converting mid-run)."""
        with self._lock:
            self._convert_on_write.update(record_ids)

    def delete(self, record_ids: Iterable[str]) -> None:
        with self._lock:
            for record_id in record_ids:
                self._records.pop(record_id, None)

    # --- faults --------------------------------------------------------------------------------------------

    def fail_validation(self, record_ids: Iterable[str], message: str) -> None:
        with self._lock:
            self._validation.update(dict.fromkeys(record_ids, message))

    def lock_rows(self, record_ids: Iterable[str]) -> None:
        with self._lock:
            self._locked.update(record_ids)

    def lock_share(self, share: float, seed: int = 0) -> None:
        """From now on, ``share`` of the records (chosen by a hash of seed and Id) are locked by another
        transaction on their first write attempt only: that attempt gets UNABLE_TO_LOCK_ROW, later ones pass."""
        with self._lock:
            self._lock_share = (share, seed)
            self._first_tried.clear()

    def clear_faults(self) -> None:
        with self._lock:
            self._validation.clear()
            self._locked.clear()
            self._lock_share = (0.0, 0)

    def _locked_on_first_try(self, record_id: str) -> bool:
        share, seed = self._lock_share
        if not share or record_id in self._first_tried:
            return False
        self._first_tried.add(record_id)
        digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
        if int.from_bytes(digest[:8], "big") >= share * 2**64:
            return False
        self.locks_injected[record_id] += 1
        return True

    # --- schema --------------------------------------------------------------------------------------------

    def fields(self) -> tuple[SandboxField, ...]:
        """The Account fields as describe shows them now."""
        with self._lock:
            return tuple(self._fields.values())

    def alter_field(self, name: str, **changes: Any) -> None:
        """An admin changes a field (length, picklist values, restricted, updateable ...)."""
        with self._lock:
            self._fields[name] = dataclasses.replace(self._fields[name], **changes)

    # --- query ---------------------------------------------------------------------------------------------

    def query(self, query: Query, version: str) -> dict[str, Any]:
        """The first page of ``query``; later pages via ``query_more`` with the nextRecordsUrl's locator."""
        with self._lock:
            records = list(self._records.values())
        found = query.run(records)
        if query.count:
            return {"totalSize": len(found), "done": True, "records": []}
        locator = "01g" + secrets.token_hex(8)[:15].upper()
        with self._lock:
            self._cursors[locator] = _Cursor(query.fields, found)
            while len(self._cursors) > _MAX_CURSORS:
                self._cursors.popitem(last=False)
        return self._page(locator, 0, version)

    def query_more(self, locator: str, offset: int, version: str) -> dict[str, Any]:
        with self._lock:
            known = locator in self._cursors and offset <= len(self._cursors[locator].records)
        if not known:
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(locator, offset, version)

    def _page(self, locator: str, offset: int, version: str) -> dict[str, Any]:
        with self._lock:
            cursor = self._cursors[locator]
            rows = cursor.records[offset : offset + PAGE_SIZE]
            body: dict[str, Any] = {
                "totalSize": len(cursor.records),
                "done": offset + len(rows) >= len(cursor.records),
                "records": [self._project(row, cursor.fields, version) for row in rows],
            }
            if body["done"]:
                del self._cursors[locator]
            else:
                body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{offset + len(rows)}"
        return body

    def _project(self, record: Mapping[str, Any], fields: Sequence[str], version: str) -> dict[str, Any]:
        url = f"/services/data/v{version}/sobjects/{self.sobject}/{record['Id']}"
        attributes = {"type": self.sobject, "url": url}
        return {"attributes": attributes, **{name: record.get(name) for name in fields}}

    # --- sObject Collections -------------------------------------------------------------------------------

    def retrieve(
        self, ids: Sequence[str], fields: Sequence[str], version: str
    ) -> list[dict[str, Any] | None]:
        """``GET composite/sobjects/Account``: one entry per id, null where no such record exists."""
        if len(ids) > RETRIEVE_MAX:
            raise ApiError(400, "EXCEEDED_ID_LIMIT", f"cannot retrieve more than {RETRIEVE_MAX} records")
        names = [self._field(name).name for name in fields]
        with self._lock:
            found = [self._records.get(record_id) for record_id in ids]
            return [None if record is None else self._project(record, names, version) for record in found]

    def update(self, items: Sequence[Any], all_or_none: bool) -> list[dict[str, Any]]:
        """``PATCH composite/sobjects``: per-record SaveResults, in request order."""
        if len(items) > COLLECTION_MAX:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        for item in items:
            for name in item if isinstance(item, dict) else ():
                if name not in ("attributes", "id", "Id"):
                    self._field(name)
        with self._lock:
            checked = [self._check(item) for item in items]
            failed = any(error is not None for _, _, error in checked)
            return [
                self._finish(record_id, values, error, all_or_none and failed)
                for record_id, values, error in checked
            ]

    def _check(self, item: Any) -> tuple[str | None, dict[str, Any], Error | None]:
        if not isinstance(item, dict) or not isinstance(item.get("attributes"), dict):
            return None, {}, ("INVALID_FIELD", "Each record needs an attributes map with a type", [])
        record_id = item.get("id") or item.get("Id")
        values = {self._field(k).name: v for k, v in item.items() if k not in ("attributes", "id", "Id")}
        if item["attributes"].get("type") != self.sobject:
            return record_id, values, ("INVALID_TYPE", f"sObject type is not {self.sobject}", [])
        if not record_id:
            return None, values, ("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        return record_id, values, self._record_error(record_id, values)

    def _state_error(self, record_id: str) -> Error | None:
        """A record that is gone, or a Lead converted (now, if a person converts it as the write arrives)."""
        if record_id not in self._records:
            return "ENTITY_IS_DELETED", "entity is deleted", []
        if record_id in self._convert_on_write:
            self._convert_on_write.discard(record_id)
            self.convert([record_id])
        if self._records[record_id].get("IsConverted") is True:
            # The code is seen in clients (PROTOCOLS.md 3.4); the message's wording is an assumption.
            return "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", []
        return None

    def _field(self, name: str) -> SandboxField:
        return field_named(name, self._by_lower, self.sobject)

    def _record_error(self, record_id: str, values: dict[str, Any]) -> Error | None:
        state = self._state_error(record_id)
        if state is not None:
            return state
        read_only = [name for name in values if not self._fields[name].updateable]
        if read_only:
            message = (
                f"Unable to create/update fields: {', '.join(read_only)}. Please check the security settings."
            )
            return "INVALID_FIELD_FOR_INSERT_UPDATE", message, read_only
        for name, value in values.items():
            problem = value_error(self._fields[name], value)
            if problem:
                return problem[0], problem[1], [name]
        if record_id in self._locked or self._locked_on_first_try(record_id):
            return "UNABLE_TO_LOCK_ROW", _LOCK_MESSAGE.format(id=record_id), []
        if record_id in self._validation:
            return "FIELD_CUSTOM_VALIDATION_EXCEPTION", self._validation[record_id], []
        return None

    def _finish(
        self, record_id: str | None, values: dict[str, Any], error: Error | None, roll_back: bool
    ) -> dict[str, Any]:
        if error is None and roll_back:
            error = ("ALL_OR_NONE_OPERATION_ROLLED_BACK", _ROLLED_BACK, [])
        if error is not None:
            result: dict[str, Any] = {"success": False, "errors": [_error(*error)]}
            return {"id": record_id, **result} if record_id else result
        assert record_id is not None  # _check only passes records with an Id
        self._apply(record_id, values)
        return {"id": record_id, "success": True, "errors": []}

    def _apply(self, record_id: str, values: dict[str, Any]) -> None:
        record = self._records[record_id]
        changed = {name: (record.get(name), new) for name, new in values.items() if record.get(name) != new}
        record.update(values, LastModifiedDate=_now(), SystemModstamp=_stamp())
        self.writes[record_id] += 1
        self.changes.append(FieldChange(record_id, changed, time.time()))


def _error(code: str, message: str, fields: list[str]) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": fields}
