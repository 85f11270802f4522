"""The sandbox registry's two change feeds, shaped as ../shared/PROTOCOLS.md 1.7 and 2.5 show them.

brreg ``/oppdateringer/enheter``: HAL pages of ``oppdaterteEnheter`` (no ``_embedded`` when empty), ``dato``
(published at or after), inclusive ``oppdateringsid``, ``size`` 1..10,000 (400 otherwise), 0-based ``page`` with
the ``size × (page+1) ≤ 10,000`` cap, ``organisasjonsnummer``, ``includeChanges`` (``endringer`` on Endring
rows), all five ``endringstype`` values. Proff ``/api/changes/register/{CC}``: ``since`` (a day, default one day
back, 30 days of history), repeatable ``types`` and ``fields``, ``withPatch``, ``scrollId``.

Assumptions, each marked where it is encoded: brreg's status beyond the paging cap (400) and its default sort
(ascending id, also when both ``dato`` and ``oppdateringsid`` are sent); patch ops only on Endring rows; Proff's
page size (1,000), the entity label key, the scroll id in ``next.href``, the end of a scroll (no ``next``), the
answer to a ``since`` beyond the history and to an unknown scroll (400), and empty patches on ADDED/REMOVED.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from worker.sandbox.tls import Reply

FeedName = Literal["brreg", "proff"]
BrokenKind = Literal["not_json", "wrong_shape"]
Patch = list[dict[str, Any]]

BRREG_FIRST_ID = 26_011_842
BRREG_DEFAULT_SIZE = 20
BRREG_MAX_WINDOW = 10_000
ENDRINGSTYPER = ("Ny", "Endring", "Sletting", "Fjernet", "Ukjent")
#: Assumption (PROTOCOLS.md 1.7: inferred from Proff Connect's pricing).
PROFF_PAGE_SIZE = 1000
PROFF_HISTORY_DAYS = 30
PROFF_TYPES = ("ADDED", "REMOVED", "MUTATED")
#: Assumption (PROTOCOLS.md 1.7: "per-entity ADDED/REMOVED label: not in the schema"): the key we put it in.
PROFF_LABEL_KEY = "changeType"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NOT_JSON = b"<html><body><h1>502 Bad Gateway</h1>upstream sent garbage</body></html>"


def json_patch(old: Any, new: Any, path: str = "") -> Patch:
    """An RFC 6902 patch turning ``old`` into ``new`` (objects key by key, lists of equal length item by item)."""
    if isinstance(old, dict) and isinstance(new, dict):
        ops: Patch = []
        for key in old.keys() - new.keys():
            ops.append({"op": "remove", "path": f"{path}/{_escape(key)}"})
        for key, value in new.items():
            if key not in old:
                ops.append({"op": "add", "path": f"{path}/{_escape(key)}", "value": value})
            else:
                ops.extend(json_patch(old[key], value, f"{path}/{_escape(key)}"))
        return sorted(ops, key=lambda op: str(op["path"]))
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            op
            for index, pair in enumerate(zip(old, new, strict=True))
            for op in json_patch(*pair, f"{path}/{index}")
        ]
    return [] if old == new else [{"op": "replace", "path": path, "value": new}]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bad(message: str) -> Reply:
    return Reply(400, {"status": 400, "error": "Bad Request", "message": message})


@dataclass(frozen=True, slots=True)
class BrregRow:
    id: int
    at: dt.datetime
    orgnr: str
    endringstype: str
    endringer: Patch | None  # Endring rows only (patch ops on other types: assumption, none)


@dataclass(frozen=True, slots=True)
class ProffItem:
    country: str
    orgnr: str
    at: dt.datetime
    patch_id: str
    patch: Patch
    label: str | None  # ADDED / REMOVED / MUTATED, or None to imitate an unlabelled entity


@dataclass(slots=True)
class _Scroll:
    items: list[ProffItem]
    with_patch: bool
    offset: int = 0


@dataclass(slots=True)
class SandboxFeeds:
    """Both feeds' items, appended by scripts, served by ``brreg_reply`` and ``proff_reply``."""

    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    proff_page_size: int = PROFF_PAGE_SIZE
    _brreg: list[BrregRow] = field(default_factory=list)
    _proff: list[ProffItem] = field(default_factory=list)
    _scrolls: dict[str, _Scroll] = field(default_factory=dict)
    _broken: dict[str, BrokenKind] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- scripting ---------------------------------------------------------------------------------------

    def add_brreg(
        self, orgnr: str, endringstype: str, *, at: dt.datetime | None = None, endringer: Patch | None = None
    ) -> int:
        """Append one brreg update row; returns its ``oppdateringsid``."""
        if endringstype not in ENDRINGSTYPER:
            raise ValueError(f"unknown endringstype {endringstype!r}")
        with self._lock:
            row_id = self._brreg[-1].id + 1 if self._brreg else BRREG_FIRST_ID
            self._brreg.append(BrregRow(row_id, at or self.clock(), orgnr, endringstype, endringer))
        return row_id

    def add_proff(
        self,
        country: str,
        orgnr: str,
        label: str | None,
        *,
        at: dt.datetime | None = None,
        patch: Patch | None = None,
    ) -> str:
        """Append one Proff ChangedEntity; returns its ``patchId``."""
        if label is not None and label not in PROFF_TYPES:
            raise ValueError(f"unknown Proff change type {label!r}")
        when = at or self.clock()
        with self._lock:
            patch_id = f"p-{when:%Y%m%d}-{len(self._proff) + 1:06d}"
            self._proff.append(ProffItem(country, orgnr, when, patch_id, patch or [], label))
        return patch_id

    def break_next(self, feed: FeedName, kind: BrokenKind = "not_json") -> None:
        """The next answer of ``feed`` is broken: not JSON, or JSON of the wrong shape."""
        with self._lock:
            self._broken[feed] = kind

    def heal(self) -> None:
        with self._lock:
            self._broken.clear()

    @property
    def brreg_rows(self) -> list[BrregRow]:
        with self._lock:
            return list(self._brreg)

    @property
    def proff_items(self) -> list[ProffItem]:
        with self._lock:
            return list(self._proff)

    def _take_broken(self, feed: FeedName) -> Reply | None:
        with self._lock:
            kind = self._broken.pop(feed, None)
        if kind == "not_json":
            return Reply(200, raw=_NOT_JSON, headers={"Content-Type": "text/html"})
        if kind == "wrong_shape":
            key = "_embedded" if feed == "brreg" else "entities"
            return Reply(200, {key: {"oppdaterteEnheter": "x"} if feed == "brreg" else [{"id": 7}]})
        return None

    # --- brreg ---------------------------------------------------------------------------------------------

    def brreg_reply(self, query: dict[str, list[str]], base_url: str) -> Reply:
        """``GET /oppdateringer/enheter`` with ``query``; ``base_url`` is the brreg API root for links."""
        broken = self._take_broken("brreg")
        if broken is not None:
            return broken
        try:
            size, page = _int(query, "size", BRREG_DEFAULT_SIZE), _int(query, "page", 0)
            rows = self._brreg_rows(query)
        except ValueError as exc:
            return _bad(str(exc))
        if not 1 <= size <= BRREG_MAX_WINDOW or page < 0:
            return _bad("size must be 1..10000 and page >= 0")
        if size * (page + 1) > BRREG_MAX_WINDOW:
            return _bad(
                "size * (page + 1) may not exceed 10000"
            )  # the cap is seen in clients; 400: assumption
        changes = _first(query, "includeChanges") == "true"
        window = [_brreg_row(row, changes, base_url) for row in rows[page * size : (page + 1) * size]]
        return Reply(200, _hal(window, len(rows), size, page, base_url))

    def _brreg_rows(self, query: dict[str, list[str]]) -> list[BrregRow]:
        # Ascending id whatever ``sort`` says, and both filters applied when both are sent (assumptions).
        with self._lock:
            rows = list(self._brreg)
        start = _first(query, "oppdateringsid")
        if start is not None:
            rows = rows[bisect.bisect_left([row.id for row in rows], int(start)) :]
        dato = _first(query, "dato")
        if dato is not None:
            since = dt.datetime.fromisoformat(dato)
            if since.tzinfo is None:
                raise ValueError("dato must carry a time zone")
            rows = [row for row in rows if row.at >= since]
        numbers = _first(query, "organisasjonsnummer")
        if numbers is not None:
            wanted = {number.strip() for number in numbers.split(",")}
            rows = [row for row in rows if row.orgnr in wanted]
        return rows

    # --- Proff ---------------------------------------------------------------------------------------------

    def proff_reply(self, query: dict[str, list[str]], country: str, base_url: str) -> Reply:
        """``GET /api/changes/register/{country}`` with ``query``; ``base_url`` is the server for ``next``."""
        broken = self._take_broken("proff")
        if broken is not None:
            return broken
        scroll_id = _first(query, "scrollId")
        if scroll_id is None:
            try:
                scroll_id = self._open_scroll(query, country)
            except ValueError as exc:
                return Reply(400, {"message": str(exc)})
        with self._lock:
            scroll = self._scrolls.get(scroll_id)
        if scroll is None:
            return Reply(400, {"message": "Unknown or expired scrollId."})  # lifetime and answer: assumption
        return Reply(200, self._proff_page(scroll_id, scroll, country, base_url))

    def _open_scroll(self, query: dict[str, list[str]], country: str) -> str:
        today = self.clock().astimezone(dt.UTC).date()
        raw = _first(query, "since")
        since = dt.date.fromisoformat(raw) if raw else today - dt.timedelta(days=1)
        if (today - since).days > PROFF_HISTORY_DAYS:
            # Proff keeps 30 days (confirmed); what it answers beyond them is unknown: 400 is an assumption.
            raise ValueError("since is older than the 30 days of change history")
        types = query.get("types") or list(PROFF_TYPES)
        if not set(types) <= set(PROFF_TYPES):
            raise ValueError("types must be ADDED, REMOVED or MUTATED")
        with self._lock:
            items = [
                i for i in self._proff if i.country == country and i.at.astimezone(dt.UTC).date() >= since
            ]
            items = [
                i for i in items if (i.label or "MUTATED") in types and _fields_match(i, query.get("fields"))
            ]
            scroll_id = (
                base64.urlsafe_b64encode(f"scroll-{len(self._scrolls) + 1}".encode()).decode().rstrip("=")
            )
            self._scrolls[scroll_id] = _Scroll(items, _first(query, "withPatch") == "true")
        return scroll_id

    def _proff_page(self, scroll_id: str, scroll: _Scroll, country: str, base_url: str) -> dict[str, Any]:
        with self._lock:
            batch = scroll.items[scroll.offset : scroll.offset + self.proff_page_size]
            scroll.offset += len(batch)
            more = scroll.offset < len(scroll.items)
        body: dict[str, Any] = {
            "numberOfHits": len(scroll.items),
            "entities": [_proff_entity(item, scroll.with_patch) for item in batch],
        }
        if more:
            # Assumption: the scroll id rides in next.href, and the last batch has no ``next``.
            href = f"{base_url}/api/changes/register/{country}?scrollId={scroll_id}"
            body["next"] = {"href": href, "rel": "next"}
        return body


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _int(query: dict[str, list[str]], name: str, default: int) -> int:
    raw = _first(query, name)
    try:
        return default if raw is None else int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number") from None


def _fields_match(item: ProffItem, prefixes: list[str] | None) -> bool:
    """``fields`` narrows MUTATED entities to those whose patch touches one of the path prefixes."""
    if not prefixes or (item.label or "MUTATED") != "MUTATED":
        return True
    return any(str(op.get("path", "")).startswith(prefix) for op in item.patch for prefix in prefixes)


def _brreg_row(row: BrregRow, changes: bool, base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "oppdateringsid": row.id,
        "dato": _stamp(row.at),
        "organisasjonsnummer": row.orgnr,
        "endringstype": row.endringstype,
    }
    if changes and row.endringer is not None:
        body["endringer"] = row.endringer
    body["_links"] = {"enhet": {"href": f"{base_url}/enheter/{row.orgnr}"}}
    return body


def _hal(rows: list[dict[str, Any]], total: int, size: int, page: int, base_url: str) -> dict[str, Any]:
    pages = -(-total // size)
    links: dict[str, Any] = {"self": {"href": f"{base_url}/oppdateringer/enheter?page={page}&size={size}"}}
    if page + 1 < pages:
        links["next"] = {"href": f"{base_url}/oppdateringer/enheter?page={page + 1}&size={size}"}
    body: dict[str, Any] = {
        "_links": links,
        "page": {"size": size, "totalElements": total, "totalPages": pages, "number": page},
    }
    if rows:
        body = {"_embedded": {"oppdaterteEnheter": rows}, **body}
    return body


def _proff_entity(item: ProffItem, with_patch: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": item.orgnr,
        "createdDate": (item.at - _EPOCH) // dt.timedelta(milliseconds=1),
        "patchId": item.patch_id,
    }
    if with_patch:
        body["patch"] = item.patch
    if item.label is not None:
        body[PROFF_LABEL_KEY] = item.label
    return body
