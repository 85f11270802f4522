"""The Salesforce CRM client: the CrmClient port on simple-salesforce, over our own TLS session.

We authenticate ourselves (worker.crm.auth) and hand simple-salesforce a session id, the instance URL and
our requests.Session. On INVALID_SESSION_ID we re-authenticate once and retry the call once. A write first
checks its values against the object's describe (worker.crm.value_fit) and re-sends records refused for a
lock (worker.crm.write_retry).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

from worker.connections.spec import ConnectionSpec
from worker.crm.auth import TOKENS, Login, fetch_token
from worker.crm.describe_cache import DESCRIBES
from worker.crm.http import build_session
from worker.crm.objects import CONVERTED_LEAD, CONVERTED_LEAD_MESSAGE, WRITE_HEADERS, rules_for, scoped
from worker.crm.port import ApiUsage, CrmRecord, FieldInfo, WriteResult
from worker.crm.soql import build_soql, modified_since, soql_quote
from worker.crm.translate import sanitize, translate
from worker.crm.value_fit import refusals
from worker.crm.write_retry import DEFAULT_POLICY, RetryPolicy, patch_with_retries
from worker.errors import CrmAuthError, CrmError

#: sObject Collections accept at most 200 records per call (update and, by our port's contract, retrieve).
COLLECTION_MAX = 200
_LIMIT_INFO = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")
T = TypeVar("T")


class SalesforceClient:
    """One connection's Salesforce session; implements ``worker.crm.port.CrmClient``.

    ``calls`` counts every HTTP request made to the REST API (an expired-session attempt included);
    token requests are not API calls and are not counted. ``usage`` follows ``Sforce-Limit-Info``.

    Args:
        spec: The connection; its ``salesforce`` section says how to authenticate and which object.
        secret: Client secret (client credentials) or PEM private key (JWT bearer).
        timeout_s: Per-request timeout in seconds (settings.crm_timeout_s in production).
        session: A session to use instead of ``build_session()`` (tests); it should come from there.
        retry: How records refused for a lock are sent again (tests shorten the waits).
    """

    def __init__(
        self,
        spec: ConnectionSpec,
        secret: str,
        *,
        timeout_s: float = 30.0,
        session: requests.Session | None = None,
        retry: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self.calls = 0
        self.usage = ApiUsage()
        self._spec = spec.salesforce
        self._object = spec.salesforce.object
        self._secret = secret
        self._timeout_s = timeout_s
        self.session = session or build_session()
        # A response hook sees every answer, errors included, so usage stays current even on a 403.
        self.session.hooks["response"].append(self._record_usage)
        self._sf: Salesforce | None = None
        self._token: str | None = None
        self._instance_url = ""
        self._user_id: str | None = None
        self._retry = retry

    # --- the port ------------------------------------------------------------------------------------------

    def stream_records(
        self, fields: Sequence[str], where: str | None = None, order_by: str | None = None
    ) -> Iterator[CrmRecord]:
        """All records of the object, selecting only ``fields``, fetched one 2,000-record page at a time.

        Args:
            fields: Field API names to select (checked; duplicates dropped).
            where: Optional trusted SOQL condition (quote literals with ``worker.crm.soql.soql_quote``).
            order_by: Optional field to order by (the planner orders by Id to resume from a cursor).

        Raises:
            CrmError: Or a subclass, translated from the failed call.
        """
        soql = build_soql(self._object, fields, scoped(self._object, where), order_by)
        page = self._call(partial(_query, soql=soql, timeout=self._timeout_s))
        while True:
            yield from (_plain(record) for record in page.get("records", []))
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            page = self._call(partial(_query_more, url=page["nextRecordsUrl"], timeout=self._timeout_s))

    def modified_keys(self, key_fields: Sequence[str], since: dt.datetime | None) -> Iterator[CrmRecord]:
        """Id, ``key_fields`` and SystemModstamp of the records modified after ``since`` (less the overlap),
        ordered by SystemModstamp then Id, one 2,000-record page per call; ``since`` None reads every record.

        Raises:
            CrmError: Or a subclass, translated from the failed call.
        """
        fields = ["Id", *key_fields, "SystemModstamp"]
        return self.stream_records(fields, modified_since(since), order_by="SystemModstamp, Id")

    def count(self, where: str | None = None) -> int:
        """How many records match ``where``: ``SELECT COUNT()``, one API call whatever the number.

        Args:
            where: Optional trusted SOQL condition (quote literals with ``worker.crm.soql.soql_quote``).
        """
        where = scoped(self._object, where)
        soql = f"SELECT COUNT() FROM {self._object}" + (f" WHERE {where}" if where else "")  # noqa: S608
        body = self._call(partial(_query, soql=soql, timeout=self._timeout_s))
        return int(body.get("totalSize", 0))

    def read_by_ids(self, ids: Sequence[str], fields: Sequence[str]) -> list[CrmRecord]:
        """Fresh values of up to 200 records in one call; deleted ones, and those out of the object's scope (a
        converted Lead), are left out.

        An object with a scope is re-read with one SOQL query (``Id IN (...) AND <scope>``), as sObject
        Collections cannot filter; any other with one sObject Collections GET.
        """
        if not ids:
            return []
        _check_batch(ids)
        wanted = list(dict.fromkeys(["Id", *fields]))
        soql = build_soql(self._object, wanted)  # validates the field names
        if rules_for(self._object).scope is not None:
            where = scoped(self._object, f"Id IN ({', '.join(map(soql_quote, ids))})")
            return self.query(f"{soql} WHERE {where}")
        params = {"ids": ",".join(ids), "fields": ",".join(wanted)}
        path = f"composite/sobjects/{self._object}"
        body = self._call(partial(_rest, path=path, method="GET", params=params, timeout=self._timeout_s))
        if not isinstance(body, list):
            raise CrmError("Salesforce's sObject Collections answer is not a list")
        return [_plain(record) for record in body if record is not None]

    def update(self, records: Sequence[CrmRecord]) -> list[WriteResult]:
        """PATCH up to 200 records (Id + changed fields) with allOrNone=false; one WriteResult per record.

        A record with a value its field cannot hold (restricted picklist, length; see the describe) is never
        sent: its result is ``VALUE_DOES_NOT_FIT``. Records refused with ``UNABLE_TO_LOCK_ROW`` are sent
        again, alone, with backoff (``retry``); each PATCH counts in ``calls``.
        """
        if not records:
            return []
        _check_batch(records)
        items = [self._collection_item(record) for record in records]
        refused = refusals(list(records), self._write_fields())
        sent = [position for position in range(len(records)) if position not in refused]
        answers = patch_with_retries([items[i] for i in sent], self._patch, self._retry) if sent else []
        results = refused | dict(zip(sent, answers, strict=True))
        return [results[position] for position in range(len(records))]

    def query(self, soql: str) -> list[CrmRecord]:
        """Every record a trusted SOQL query selects (all pages); for small metadata queries."""
        page = self._call(partial(_query, soql=soql, timeout=self._timeout_s))
        records = [_plain(record) for record in page.get("records", [])]
        while not page.get("done", True) and page.get("nextRecordsUrl"):
            page = self._call(partial(_query_more, url=page["nextRecordsUrl"], timeout=self._timeout_s))
            records += [_plain(record) for record in page.get("records", [])]
        return records

    @property
    def user_id(self) -> str | None:
        """The integration user's Id, as the token response named it (logs in if needed)."""
        if self._sf is None:
            self._connect()
        return self._user_id

    def describe(self) -> dict[str, FieldInfo]:
        """The object's fields by API name (``GET sobjects/<object>/describe``)."""
        path = f"sobjects/{self._object}/describe"
        body = self._call(partial(_rest, path=path, method="GET", timeout=self._timeout_s))
        if not isinstance(body, dict) or not isinstance(body.get("fields"), list):
            raise CrmError("Salesforce's describe answer has no field list")
        fields = {info.name: info for info in map(_field_info, body["fields"])}
        DESCRIBES.put(self._describe_key(), fields)
        return fields

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()

    def __enter__(self) -> SalesforceClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # --- writes ---------------------------------------------------------------------------------------------

    def _patch(self, items: Sequence[dict[str, Any]]) -> list[WriteResult]:
        """One sObject Collections PATCH of prepared items; results matched by position."""
        payload = json.dumps({"allOrNone": False, "records": list(items)}, default=_json_value)
        call = partial(
            _rest,
            path="composite/sobjects",
            method="PATCH",
            data=payload,
            headers=WRITE_HEADERS,
            timeout=self._timeout_s,
        )
        body = self._call(call)
        if not isinstance(body, list) or len(body) != len(items):
            raise CrmError("Salesforce's sObject Collections answer does not match the records sent")
        return [_write_result(str(item["id"]), answer) for item, answer in zip(items, body, strict=True)]

    def _write_fields(self) -> dict[str, FieldInfo]:
        """The object's describe by lower-case name: this session's cached one, else a fresh describe."""
        if self._sf is None:
            self._connect()
        fields = DESCRIBES.get(self._describe_key()) or self.describe()
        return {name.lower(): info for name, info in fields.items()}

    def _describe_key(self) -> tuple[str, str, str]:
        digest = hashlib.sha256((self._token or "").encode()).hexdigest()
        return self._instance_url, digest, self._object

    # --- calls, auth and errors ----------------------------------------------------------------------------

    def _call(self, operation: Callable[[Salesforce], T]) -> T:
        """Run one API call; on an expired session re-authenticate once and retry once."""
        sf = self._sf or self._connect()
        try:
            return self._attempt(sf, operation)
        except SalesforceExpiredSession:
            pass
        try:
            return self._attempt(self._connect(failed=self._token), operation)
        except SalesforceExpiredSession as exc:
            raise CrmAuthError("Salesforce rejected a freshly issued session (INVALID_SESSION_ID)") from exc

    def _attempt(self, sf: Salesforce, operation: Callable[[Salesforce], T]) -> T:
        self.calls += 1
        try:
            return operation(sf)
        except SalesforceExpiredSession:
            raise
        except (SalesforceError, requests.RequestException, ValueError) as exc:
            raise translate(exc, (self._secret, self._token)) from exc

    def _connect(self, failed: str | None = None) -> Salesforce:
        """A simple-salesforce handle on this process's token for the connection (a new login if ``failed``
        is that token: Salesforce refused it)."""

        def login() -> Login:
            return fetch_token(self._spec, self._secret, self.session, timeout_s=self._timeout_s)

        token, instance_url, user_id = TOKENS.token(self._spec, self._secret, login, failed=failed)
        self._token, self._instance_url, self._user_id = token, instance_url, user_id
        self._sf = Salesforce(
            instance_url=instance_url,
            session_id=token,
            session=self.session,
            version=self._spec.api_version,
            object_pairs_hook=dict,
        )
        return self._sf

    def _record_usage(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        match = _LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info", ""))
        if match:
            self.usage.used, self.usage.limit = int(match.group(1)), int(match.group(2))

    def _collection_item(self, record: CrmRecord) -> dict[str, Any]:
        if not record.get("Id"):
            raise ValueError("every record to update needs its Id")
        changed = {name: value for name, value in record.items() if name not in ("Id", "attributes")}
        return {"attributes": {"type": self._object}, "id": record["Id"], **changed}


# --- helpers (module level so partial() can bind them without closures over loop variables) -----------------


def _query(sf: Salesforce, *, soql: str, timeout: float) -> dict[str, Any]:
    result: dict[str, Any] = sf.query(soql, timeout=timeout)
    return result


def _query_more(sf: Salesforce, *, url: str, timeout: float) -> dict[str, Any]:
    result: dict[str, Any] = sf.query_more(url, identifier_is_url=True, timeout=timeout)
    return result


def _rest(sf: Salesforce, *, path: str, method: str, timeout: float, **kwargs: Any) -> Any:
    # restful() turns an empty JSON answer into None; callers treat that as an empty list.
    return sf.restful(path, method=method, timeout=timeout, **kwargs) or []


def _plain(record: dict[str, Any]) -> CrmRecord:
    return {name: value for name, value in record.items() if name != "attributes"}


def _check_batch(items: Sequence[Any]) -> None:
    if len(items) > COLLECTION_MAX:
        raise ValueError(
            f"sObject Collections take at most {COLLECTION_MAX} records per call, got {len(items)}"
        )


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot send a {type(value).__name__} to Salesforce")


def _write_result(record_id: str, item: Any) -> WriteResult:
    if not isinstance(item, dict):
        return WriteResult(record_id, False, "UNKNOWN", "Salesforce returned no result for this record")
    if item.get("success"):
        return WriteResult(record_id, True)
    errors = item.get("errors") or [{}]
    first = errors[0] if isinstance(errors[0], dict) else {}
    code = str(first.get("statusCode") or "UNKNOWN")
    if code == CONVERTED_LEAD:  # converted mid-run: a per-record failure of its own, never retried
        return WriteResult(record_id, False, code, CONVERTED_LEAD_MESSAGE)
    return WriteResult(record_id, False, code, sanitize(str(first.get("message") or "")))


def _field_info(raw: dict[str, Any]) -> FieldInfo:
    keys = ("label", "custom", "picklistValues", "restrictedPicklist")
    extra: dict[str, Any] = {key: raw[key] for key in keys if key in raw}
    return FieldInfo(
        name=str(raw["name"]),
        type=str(raw.get("type", "string")),
        updateable=bool(raw.get("updateable", False)),
        length=raw.get("length"),
        nillable=bool(raw.get("nillable", True)),
        extra=extra,
    )
