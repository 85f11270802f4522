"""A sandbox Salesforce org over HTTPS, speaking the real REST wire protocol that simple-salesforce uses.

``POST /services/oauth2/token`` (client credentials, JWT bearer), and under ``/services/data/vXX.X/``:
``query`` + ``query/{locator}-{offset}`` (2,000-record pages; also the permission objects of
``salesforce_permissions``), ``sobjects/{Account|Lead}/describe``,
``composite/sobjects/{Account|Lead}?ids=&fields=`` and ``PATCH composite/sobjects``. The request log keeps
every header (``Sforce-Auto-Assign`` on writes included) for assertions. Every API call needs a
valid Bearer token, counts against the daily limit and answers ``Sforce-Limit-Info``. Faults switch on
at run time from the test thread.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from worker.sandbox.salesforce_oauth import USER_ID, OAuthRejected, TokenIssuer
from worker.sandbox.salesforce_permissions import PERMISSION_FIELDS, PermissionStore
from worker.sandbox.salesforce_schema import ACCOUNT_FIELDS, LEAD_FIELDS, describe_body
from worker.sandbox.salesforce_store import AccountStore, ApiError, FieldChange
from worker.sandbox.soql import SoqlError, parse
from worker.sandbox.tls import RecordedRequest, Reply, SandboxCA, SandboxHTTPServer

TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 (a path, not a password)
_API = re.compile(r"^/services/data/v(?P<version>\d+\.\d)(?P<rest>/.*)?$")
_SCHEMA = {
    "Account": [field.name for field in ACCOUNT_FIELDS],
    "Lead": [field.name for field in LEAD_FIELDS],
    **PERMISSION_FIELDS,
}

ApiRoute = Callable[[RecordedRequest, str, "re.Match[str]"], Reply]


def _errors(status: int, code: str, message: str) -> Reply:
    return Reply(status, [{"message": message, "errorCode": code}])


class SandboxSalesforce:
    """One sandbox org with Account and Lead records, reachable at ``url`` with a certificate from ``ca``."""

    def __init__(
        self,
        ca: SandboxCA,
        accounts: Iterable[Mapping[str, Any]],
        *,
        client_id: str,
        client_secret: str,
        jwt_public_key_pem: str | None = None,
        username: str | None = None,
        api_limit: int = 1_000_000,
        leads: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self._server = SandboxHTTPServer(ca, self._route)
        self._oauth = TokenIssuer(
            client_id=client_id,
            client_secret=client_secret,
            jwt_public_key_pem=jwt_public_key_pem,
            username=username,
        )
        self._store = AccountStore(accounts)
        self._leads = AccountStore(leads, sobject="Lead", schema=LEAD_FIELDS)
        self._stores = {"Account": self._store, "Lead": self._leads}
        self._cursor_store: dict[str, AccountStore] = {}
        #: The integration user's permission sets (tests add or widen them: ``permissions.assign(...)``).
        self.permissions = PermissionStore(USER_ID)
        self._lock = threading.Lock()
        self._used = 0
        self._limit = api_limit
        self._latency_s = 0.0
        self.api_calls = 0
        self._api_routes: list[tuple[str, re.Pattern[str], ApiRoute]] = [
            ("GET", re.compile(r"^/query/?$"), self._query),
            ("GET", re.compile(r"^/query/(?P<locator>01g\w+)-(?P<offset>\d+)$"), self._query_more),
            ("GET", re.compile(r"^/sobjects/(?P<object>\w+)/describe/?$"), self._describe),
            ("GET", re.compile(r"^/composite/sobjects/(?P<object>\w+)/?$"), self._retrieve),
            ("PATCH", re.compile(r"^/composite/sobjects/?$"), self._update),
        ]

    # --- lifecycle and inspection --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._server.requests

    @property
    def accounts(self) -> dict[str, dict[str, Any]]:
        """A consistent deep copy of every Account, Id → fields."""
        return self._store.snapshot()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return self._store.snapshot()

    @property
    def leads(self) -> dict[str, dict[str, Any]]:
        """A consistent deep copy of every Lead, Id → fields."""
        return self._leads.snapshot()

    @property
    def lead_store(self) -> AccountStore:
        """The Lead records (tests read its ``writes`` and ``changes``)."""
        return self._leads

    def add_lead(self, lead: Mapping[str, Any]) -> str:
        return self._leads.add(lead)

    def convert_leads(self, record_ids: Iterable[str]) -> None:
        """A person converts these Leads now (IsConverted = true)."""
        self._leads.convert(record_ids)

    def convert_before_write(self, record_ids: Iterable[str]) -> None:
        """These Leads are converted the moment a write reaches them: the write answers
        CANNOT_UPDATE_CONVERTED_LEAD, as Salesforce does for a Lead converted mid-run."""
        self._leads.convert_before_write(record_ids)

    @property
    def writes(self) -> Counter[str]:
        """Successful writes per record Id (for "never written twice" assertions)."""
        return self._store.writes

    @property
    def changes(self) -> list[FieldChange]:
        """Every successful write in order, with the fields it changed."""
        return self._store.changes

    @property
    def tokens_issued(self) -> int:
        return self._oauth.issued

    def api_requests(self) -> list[RecordedRequest]:
        """The recorded requests to the REST API (token requests left out)."""
        return [request for request in self.requests if request.path.startswith("/services/data/")]

    def start(self) -> SandboxSalesforce:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def edit(self, record_id: str, **values: Any) -> None:
        """A person edits a record in Salesforce (not counted in ``writes``)."""
        self._store_of_id(record_id).edit(record_id, **values)

    def _store_of_id(self, record_id: str) -> AccountStore:
        return self._leads if record_id.startswith("00Q") else self._store

    def delete(self, record_ids: Iterable[str]) -> None:
        self._store.delete(record_ids)

    # --- switchable faults ---------------------------------------------------------------------------------

    def expire_sessions(self) -> None:
        self._oauth.expire_all()

    def revoke_client(self) -> None:
        self._oauth.revoke()

    def validation_failure(self, record_ids: Iterable[str], message: str) -> None:
        self._store.fail_validation(record_ids, message)

    def lock_rows(self, record_ids: Iterable[str]) -> None:
        self._store.lock_rows(record_ids)

    def lock_share(self, share: float, seed: int = 0) -> None:
        """Lock ``share`` of the records on their first write attempt only (UNABLE_TO_LOCK_ROW once each)."""
        self._store.lock_share(share, seed)

    @property
    def locks_injected(self) -> Counter[str]:
        """How often each record was refused by :meth:`lock_share` (once at most)."""
        return self._store.locks_injected

    def alter_field(self, name: str, **changes: Any) -> None:
        """Change an Account field as an admin would (``length=``, ``picklist=``, ``restricted=`` ...)."""
        self._store.alter_field(name, **changes)

    def clear_faults(self) -> None:
        self._store.clear_faults()

    @property
    def latency_s(self) -> float:
        with self._lock:
            return self._latency_s

    @latency_s.setter
    def latency_s(self, value: float) -> None:
        with self._lock:
            self._latency_s = value

    def set_api_usage(self, used: int, limit: int) -> None:
        with self._lock:
            self._used, self._limit = used, limit

    @property
    def api_usage(self) -> tuple[int, int]:
        with self._lock:
            return self._used, self._limit

    # --- routing -------------------------------------------------------------------------------------------

    def _route(self, request: RecordedRequest) -> Reply:
        delay = self.latency_s
        if delay:
            time.sleep(delay)
        if request.path == TOKEN_PATH:
            return (
                self._token(request)
                if request.method == "POST"
                else _errors(405, "METHOD_NOT_ALLOWED", "POST")
            )
        match = _API.match(request.path)
        if match is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        reply = self._api(request, match.group("version"), match.group("rest") or "/")
        reply.headers["Sforce-Limit-Info"] = "api-usage={}/{}".format(*self.api_usage)
        return reply

    def _token(self, request: RecordedRequest) -> Reply:
        raw = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        form = {key: values[-1] for key, values in {**request.query, **raw}.items()}
        try:
            return Reply(200, self._oauth.issue(form, self.url))
        except OAuthRejected as exc:
            return Reply(400, {"error": exc.error, "error_description": exc.description})

    def _api(self, request: RecordedRequest, version: str, rest: str) -> Reply:
        authorization = request.headers.get("authorization", "")
        token = authorization[7:] if authorization.lower().startswith("bearer ") else ""
        if not token or not self._oauth.is_valid(token):
            return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if not self._count_call():
            return _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        for method, pattern, handler in self._api_routes:
            match = pattern.match(rest)
            if match and request.method == method:
                return self._guarded(handler, request, version, match)
        return _errors(404, "NOT_FOUND", "The requested resource does not exist")

    def _count_call(self) -> bool:
        with self._lock:
            if self._used >= self._limit:
                return False
            self._used += 1
            self.api_calls += 1
            return True

    @staticmethod
    def _guarded(handler: ApiRoute, request: RecordedRequest, version: str, match: re.Match[str]) -> Reply:
        try:
            return handler(request, version, match)
        except ApiError as exc:
            return _errors(exc.status, exc.code, exc.message)
        except SoqlError as exc:
            return _errors(400, exc.code, exc.message)

    # --- API resources -------------------------------------------------------------------------------------

    def _query(self, request: RecordedRequest, version: str, match: re.Match[str]) -> Reply:
        query = parse((request.query.get("q") or [""])[-1], _SCHEMA)
        store = self._stores.get(query.sobject)
        if store is None:
            return Reply(200, self.permissions.query(query, version))
        body = store.query(query, version)
        locator = str(body.get("nextRecordsUrl", "")).rsplit("/", 1)[-1].split("-")[0]
        if locator:
            with self._lock:
                self._cursor_store[locator] = store
        return Reply(200, body)

    def _query_more(self, request: RecordedRequest, version: str, match: re.Match[str]) -> Reply:
        with self._lock:
            store = self._cursor_store.get(match["locator"], self._store)
        return Reply(200, store.query_more(match["locator"], int(match["offset"]), version))

    def _describe(self, request: RecordedRequest, version: str, match: re.Match[str]) -> Reply:
        store = self._stores.get(match["object"])
        if store is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        return Reply(200, describe_body(version, store.fields(), store.sobject))

    def _retrieve(self, request: RecordedRequest, version: str, match: re.Match[str]) -> Reply:
        store = self._stores.get(match["object"])
        if store is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        ids = _csv(request.query.get("ids"))
        fields = _csv(request.query.get("fields"))
        if not ids or not fields:
            return _errors(400, "MISSING_ARGUMENT", "ids and fields are required")
        return Reply(200, store.retrieve(ids, fields, version))

    def _update(self, request: RecordedRequest, version: str, match: re.Match[str]) -> Reply:
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            return _errors(400, "JSON_PARSER_ERROR", "The request body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            return _errors(400, "JSON_PARSER_ERROR", "Expected an object with a records list")
        return Reply(
            200, self._store_for(body["records"]).update(body["records"], bool(body.get("allOrNone", False)))
        )

    def _store_for(self, records: list[Any]) -> AccountStore:
        """The store of the first record's type (a mixed request: the others answer INVALID_TYPE)."""
        first = records[0] if records and isinstance(records[0], dict) else {}
        kind = first.get("attributes", {}).get("type") if isinstance(first.get("attributes"), dict) else None
        return self._stores.get(str(kind), self._store)


def _csv(values: list[str] | None) -> list[str]:
    return [item.strip() for item in ",".join(values or []).split(",") if item.strip()]
