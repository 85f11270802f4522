"""A sandbox business registry: one HTTPS server speaking both Proff's and Brønnøysund's JSON.

Proff answers ``/api/companies/register/{CC}/{orgnr}`` (base URL = server URL); brreg answers
``/enhetsregisteret/api/enheter/{orgnr}`` and ``/enhetsregisteret/api/enheter?organisasjonsnummer=...``.
Both change feeds are served too (``/api/changes/register/{CC}``, ``/enhetsregisteret/api/oppdateringer/enheter``,
see feeds.py); ``script_change``/``script_new``/``script_delete``/``script_remove`` append a feed item to both
and change what a lookup of that company returns.
Each canonical Company is rendered as ../shared/PROTOCOLS.md shows that registry's bodies (proff_json.py,
registry_json.py), never in the shape our parsers happen to read, and faults can be switched on at any time
from any thread: latency, rate limiting, per-number failures, transient blips, malformed bodies, masked
listings, a revoked Proff token, removed units. A test may also serve a literal body for one number.

Choices where PROTOCOLS.md has no confirmed fact (assumptions): brreg's batch search includes deleted units
(reduced body with ``slettedato``) and leaves out removed and unknown ones; the batch honours ``size``
(default 20, like brreg) and serves the first page only; Proff answers 400 to an ``api-version`` other than
1.0 or 1.1 (none means 1.0) and 404 for a removed unit; error bodies are loose.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from worker.company import Company, CompanyStatus
from worker.sandbox.feeds import SandboxFeeds, json_patch
from worker.sandbox.name_search import search_companies
from worker.sandbox.proff_json import proff_view, render_proff
from worker.sandbox.registry_json import brreg_view, render_brreg, render_brreg_page
from worker.sandbox.tls import RecordedRequest, Reply, SandboxCA, SandboxHTTPServer

PROFF_PREFIX = "/api/companies/register/"
PROFF_CHANGES = "/api/changes/register/"
BRREG_BASE = "/enhetsregisteret/api"
MalformedKind = Literal["not_json", "wrong_shape"]
PROFF_API_VERSIONS = frozenset({"1.0", "1.1"})

_NOT_JSON = b"<html><body><h1>502 Bad Gateway</h1>upstream sent garbage</body></html>"


def registry_view(provider: str, company: Company) -> Company:
    """What ``provider`` ("proff" or "brreg") tells regsync about ``company`` through this sandbox."""
    return proff_view(company) if provider == "proff" else brreg_view(company)


class SandboxRegistry:
    """The sandbox registry server; ``start()`` it, point providers at ``proff_url`` / ``brreg_url``."""

    def __init__(self, ca: SandboxCA, companies: Iterable[Company], *, proff_token: str | None) -> None:
        self._companies = {(c.country, c.org_number): c for c in companies}
        self._proff_token = proff_token
        self._lock = threading.Lock()
        self._latency_s = 0.0
        self._rps: float | None = None
        self._window: tuple[int, int] = (0, 0)
        self._failing: dict[str, int] = {}
        self._blips: deque[int] = deque()
        self._malformed: dict[str, MalformedKind] = {}
        self._removed: set[str] = set()
        self._masked: set[str] = set()
        self._literal: dict[tuple[str, str], dict[str, object]] = {}
        self._revoked = False
        #: Both change feeds; script them with the ``script_*`` methods (or append raw items to it).
        self.feeds = SandboxFeeds()
        self._server = SandboxHTTPServer(ca, self._route)

    # --- lifecycle and addresses -----------------------------------------------------------------------

    def start(self) -> SandboxRegistry:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> SandboxRegistry:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def proff_url(self) -> str:
        return self._server.url

    @property
    def brreg_url(self) -> str:
        return self._server.url + BRREG_BASE

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        return list(self._server.requests)

    @property
    def statuses(self) -> Counter[int]:
        """Replies sent so far by HTTP status (a copy), e.g. ``statuses[429]``."""
        return self._server.reply_counts()

    def clear_requests(self) -> None:
        """Forget the request log and the reply counts."""
        self._server.clear_log()

    # --- data and faults -------------------------------------------------------------------------------

    def put(self, company: Company) -> None:
        """Add or replace a company (e.g. to make the registry change between two runs)."""
        with self._lock:
            self._companies[(company.country, company.org_number)] = company

    @property
    def latency_s(self) -> float:
        return self._latency_s

    @latency_s.setter
    def latency_s(self, value: float) -> None:
        self._latency_s = max(0.0, value)

    def rate_limit(self, rps: float | None) -> None:
        """Answer 429 (Retry-After: 1) to requests above ``rps`` in a one-second window; None lifts it."""
        with self._lock:
            self._rps = rps
            self._window = (0, 0)

    def fail_with(self, orgnr: str, status: int | None) -> None:
        """Every request about ``orgnr`` answers ``status`` (e.g. 500, 503, 410); None heals it."""
        with self._lock:
            if status is None:
                self._failing.pop(orgnr, None)
            else:
                self._failing[orgnr] = status

    def fail_next(self, n: int, status: int = 503) -> None:
        """The next ``n`` requests, whatever they ask, answer ``status`` (a transient blip)."""
        with self._lock:
            self._blips.extend([status] * n)

    def malformed(self, orgnr: str, kind: MalformedKind = "not_json") -> None:
        """Answers about ``orgnr`` are broken: not JSON, or JSON of the wrong shape (batch: always shape)."""
        with self._lock:
            self._malformed[orgnr] = kind

    def remove(self, orgnr: str) -> None:
        """The unit was removed from brreg (410 Gone); Proff no longer knows it (404)."""
        with self._lock:
            self._removed.add(orgnr)

    def mask(self, orgnr: str) -> None:
        """Proff masks this listing's names and birth dates with ``***`` (as it may, per docs.spant.no)."""
        with self._lock:
            self._masked.add(orgnr)

    def serve_proff_body(self, country: str, orgnr: str, body: dict[str, object]) -> None:
        """Proff answers ``body`` verbatim for this number (e.g. a PROTOCOLS.md example), whatever the data says."""
        with self._lock:
            self._literal[(country, orgnr)] = body

    def revoke_token(self) -> None:
        """Proff answers 401 to everything from now on."""
        with self._lock:
            self._revoked = True

    def restore_token(self) -> None:
        with self._lock:
            self._revoked = False

    def reset_faults(self) -> None:
        with self._lock:
            self._latency_s = 0.0
            self._rps = None
            self._failing.clear()
            self._blips.clear()
            self._malformed.clear()
            self._removed.clear()
            self._masked.clear()
            self._revoked = False
        self.feeds.heal()

    # --- scripted changes: a feed item and the new state a lookup then returns -------------------------------

    def script_change(self, company: Company, *, at: dt.datetime | None = None) -> Scripted:
        """``company`` changed to these values: brreg Endring and Proff MUTATED, patches diffed from the bodies."""
        old = self._known(company.country, company.org_number)
        self.put(company)
        brreg_patch = json_patch(render_brreg(old, self.brreg_url), render_brreg(company, self.brreg_url))
        proff_patch = json_patch(render_proff(old), render_proff(company))
        brreg = self._brreg_item(company.country, company.org_number, "Endring", at, brreg_patch)
        return Scripted(
            brreg,
            self.feeds.add_proff(company.country, company.org_number, "MUTATED", at=at, patch=proff_patch),
        )

    def script_new(self, company: Company, *, at: dt.datetime | None = None) -> Scripted:
        """A new unit: brreg Ny, Proff ADDED (empty patch: an assumption); lookups now find it."""
        self.put(company)
        brreg = self._brreg_item(company.country, company.org_number, "Ny", at)
        return Scripted(brreg, self.feeds.add_proff(company.country, company.org_number, "ADDED", at=at))

    def script_delete(self, country: str, orgnr: str, *, at: dt.datetime | None = None) -> Scripted:
        """Deleted from the register: brreg Sletting (lookup: 200 with ``slettedato``); Proff MUTATED (INACTIVE)."""
        old = self._known(country, orgnr)
        when = at or self.feeds.clock()
        deleted = old.model_copy(update={"status": CompanyStatus.DELETED, "last_updated": when.date()})
        self.put(deleted)
        patch = json_patch(render_proff(old), render_proff(deleted))
        brreg = self._brreg_item(country, orgnr, "Sletting", when)
        return Scripted(brreg, self.feeds.add_proff(country, orgnr, "MUTATED", at=when, patch=patch))

    def script_remove(self, country: str, orgnr: str, *, at: dt.datetime | None = None) -> Scripted:
        """Removed from open data: brreg Fjernet (lookup: 410), Proff REMOVED (lookup: 404)."""
        self._known(country, orgnr)
        self.remove(orgnr)
        brreg = self._brreg_item(country, orgnr, "Fjernet", at)
        return Scripted(brreg, self.feeds.add_proff(country, orgnr, "REMOVED", at=at))

    def script_unknown(self, orgnr: str, *, at: dt.datetime | None = None) -> int:
        """A brreg ``Ukjent`` row (type unknown: re-fetch); the unit itself is unchanged."""
        return self.feeds.add_brreg(orgnr, "Ukjent", at=at)

    def _known(self, country: str, orgnr: str) -> Company:
        with self._lock:
            company = self._companies.get((country, orgnr))
        if company is None:
            raise KeyError(f"the sandbox registry holds no {country} {orgnr}")
        return company

    def _brreg_item(
        self,
        country: str,
        orgnr: str,
        kind: str,
        at: dt.datetime | None,
        patch: list[dict[str, object]] | None = None,
    ) -> int | None:
        return self.feeds.add_brreg(orgnr, kind, at=at, endringer=patch) if country == "NO" else None

    # --- routing ---------------------------------------------------------------------------------------

    def _route(self, request: RecordedRequest) -> Reply:
        if request.method != "GET":
            return Reply(405, {"error": "Method Not Allowed"}, headers={"Allow": "GET"})
        if self._latency_s:
            time.sleep(self._latency_s)
        return self._throttle() or self._blip() or self._dispatch(request)

    def _dispatch(self, request: RecordedRequest) -> Reply:
        if request.path.startswith(PROFF_PREFIX):
            return self._proff_route(request)
        if request.path.startswith(PROFF_CHANGES):
            return self._proff_refusal(request) or self.feeds.proff_reply(
                request.query, request.path[len(PROFF_CHANGES) :].upper(), self.proff_url
            )
        if request.path == f"{BRREG_BASE}/oppdateringer/enheter":
            return self.feeds.brreg_reply(request.query, self.brreg_url)
        if request.path == f"{BRREG_BASE}/enheter":
            return self._brreg_batch(request)
        if request.path.startswith(f"{BRREG_BASE}/enheter/"):
            return self._brreg_single(unquote(request.path.rsplit("/", 1)[1]))
        return Reply(404, {"status": 404, "error": "Not Found", "path": request.path})

    def _throttle(self) -> Reply | None:
        with self._lock:
            if self._rps is None:
                return None
            second = int(time.time())
            window, count = self._window
            count = count + 1 if window == second else 1
            self._window = (second, count)
            if count <= self._rps:
                return None
        return Reply(429, {"error": "Too Many Requests"}, headers={"Retry-After": "1"})

    def _blip(self) -> Reply | None:
        with self._lock:
            status = self._blips.popleft() if self._blips else None
        return None if status is None else Reply(status, {"error": f"sandbox blip {status}"})

    def _lookup(self, country: str, orgnr: str) -> tuple[Company | None, int | None, MalformedKind | None]:
        with self._lock:
            company = self._companies.get((country, orgnr))
            failing = self._failing.get(orgnr)
            if orgnr in self._removed:
                company = None
            if company is not None and company.status is CompanyStatus.NOT_FOUND:
                company = None
            return company, failing, self._malformed.get(orgnr)

    def _proff_route(self, request: RecordedRequest) -> Reply:
        if "query" in request.query:  # register search: /api/companies/register/{cc}?query=
            country = request.path[len(PROFF_PREFIX) :].strip("/").upper()
            return self._proff_refusal(request) or self._proff_search(country, request)
        return self._proff(request)

    def _proff(self, request: RecordedRequest) -> Reply:
        refused = self._proff_refusal(request)
        if refused is not None:
            return refused
        parts = request.path[len(PROFF_PREFIX) :].split("/")
        if len(parts) != 2:
            return Reply(404, {"message": "No HTTP resource was found that matches the request URI."})
        country, orgnr = parts[0].upper(), unquote(parts[1])
        company, failing, broken = self._lookup(country, orgnr)
        with self._lock:
            literal, masked = self._literal.get((country, orgnr)), orgnr in self._masked
        if failing is not None:
            return Reply(failing, {"message": f"sandbox failure {failing}"})
        if literal is not None:
            return Reply(200, literal)
        if company is None:
            return Reply(404, {"message": "Company not found"})
        wrong: dict[str, object] = {"organisationNumber": orgnr, "visitorAddress": "x"}
        return _broken_reply(broken, wrong) or Reply(200, render_proff(company, masked=masked))

    def _proff_refusal(self, request: RecordedRequest) -> Reply | None:
        with self._lock:
            revoked, token = self._revoked, self._proff_token
        if revoked or (token is not None and request.headers.get("authorization") != f"Token {token}"):
            return Reply(401, {"message": "Authorization has been denied for this request."})
        if request.headers.get("api-version", "1.0") not in PROFF_API_VERSIONS:
            return Reply(400, {"message": "Unsupported api-version."})
        return None

    def _brreg_single(self, orgnr: str) -> Reply:
        company, failing, broken = self._lookup("NO", orgnr)
        with self._lock:
            removed = orgnr in self._removed
        if failing is not None:
            return Reply(failing, {"status": failing, "error": "sandbox failure"})
        if removed:
            return Reply(410, {"status": 410, "error": "Gone", "message": f"Enhet {orgnr} er fjernet"})
        if company is None:
            return Reply(404, {"status": 404, "error": "Not Found", "message": f"Enhet {orgnr} finnes ikke"})
        return _broken_reply(broken, _wrong_brreg(orgnr)) or Reply(200, render_brreg(company, self.brreg_url))

    def _search(self, country: str, query: str) -> list[Company]:
        with self._lock:
            companies = [c for key, c in self._companies.items() if key[1] not in self._removed]
        return search_companies(companies, country, query)

    def _proff_search(self, country: str, request: RecordedRequest) -> Reply:
        """``GET /api/companies/register/{cc}?query=&pageNumber=&pageSize=``; the body's shape is an assumption
        (PROTOCOLS.md 1.2 names the endpoint, not the body): ``{numberOfHits, companies: [...]}``."""
        hits = self._search(country, (request.query.get("query") or [""])[0])
        size = int((request.query.get("pageSize") or ["10"])[0] or 10)
        page = int((request.query.get("pageNumber") or ["1"])[0] or 1)
        shown = hits[(page - 1) * size : page * size]
        return Reply(200, {"numberOfHits": len(hits), "companies": [render_proff(c) for c in shown]})

    def _brreg_search(self, request: RecordedRequest) -> Reply:
        """``GET /enheter?navn=&size=``: a HAL search page like the batch lookup's."""
        hits = self._search("NO", (request.query.get("navn") or [""])[0])
        size = int((request.query.get("size") or ["20"])[0] or 20)
        return Reply(
            200, render_brreg_page([render_brreg(c, self.brreg_url) for c in hits], size, self.brreg_url)
        )

    def _brreg_batch(self, request: RecordedRequest) -> Reply:
        if "navn" in request.query:
            return self._brreg_search(request)
        wanted = [n.strip() for v in request.query.get("organisasjonsnummer", []) for n in v.split(",")]
        size = int((request.query.get("size") or ["20"])[0] or 20)
        units: list[object] = []
        for orgnr in dict.fromkeys(n for n in wanted if n):
            company, failing, broken = self._lookup("NO", orgnr)
            if failing is not None and failing >= 500:
                return Reply(failing, {"status": failing, "error": "sandbox failure"})
            if company is None or failing is not None:
                continue  # unknown and removed units are silently missing; deleted ones are hits (assumption)
            units.append(_wrong_brreg(orgnr) if broken else render_brreg(company, self.brreg_url))
        return Reply(200, render_brreg_page(units, size, self.brreg_url))


@dataclass(frozen=True, slots=True)
class Scripted:
    """The feed items one scripted change appended: brreg's ``oppdateringsid`` (NO only) and Proff's ``patchId``."""

    brreg_id: int | None
    proff_patch_id: str


def _broken_reply(kind: MalformedKind | None, wrong_shape: dict[str, object]) -> Reply | None:
    if kind == "not_json":
        return Reply(200, raw=_NOT_JSON, headers={"Content-Type": "text/html"})
    if kind == "wrong_shape":
        return Reply(200, wrong_shape)
    return None


def _wrong_brreg(orgnr: str) -> dict[str, object]:
    return {"organisasjonsnummer": orgnr, "navn": ["not", "a", "name"], "antallAnsatte": "many"}
