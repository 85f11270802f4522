"""Brønnøysund's change feed ``GET {base}/oppdateringer/enheter`` (../shared/PROTOCOLS.md 2.5).

A first run asks ``dato=<cutover>``; every later page asks ``oppdateringsid=<position+1>`` (inclusive ids), both
with ``size``, ``sort=id,ASC`` and ``includeChanges=true``, so the reader moves forward by id and never pages
deep (brreg caps ``size × (page+1)`` at 10,000). The position is the page's highest ``oppdateringsid``; a short
page or a missing ``_embedded`` ends the read. brreg keeps its whole history, so there is no gap to detect.

Positions are strings: digits (the last id applied) or ``dato:<ISO-8601 UTC>`` (a first run's cutover).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from worker.changes.models import ChangeType
from worker.errors import FeedError, FeedMalformed
from worker.feeds.patch import PatchOp, feed_json, feed_key, patch_paths, validated
from worker.feeds.port import FeedChange, FeedPage, feed_source
from worker.registry.http import RegistryHttp

log = logging.getLogger(__name__)

FEED = "brreg"
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
_DATO = "dato:"

#: ``endringstype`` values (PROTOCOLS.md 2.5); any other value is a malformed feed, never guessed.
ENDRINGSTYPER: dict[str, ChangeType] = {
    "Ny": ChangeType.NEW,
    "Endring": ChangeType.CHANGED,
    "Sletting": ChangeType.DELETED,
    "Fjernet": ChangeType.REMOVED,
    "Ukjent": ChangeType.UNKNOWN,
}


class BrregFeedRow(BaseModel):
    """One ``oppdaterteEnheter`` item; ``endringer`` only with ``includeChanges=true`` (since 2025-11-13)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    oppdateringsid: int = Field(ge=0)
    dato: AwareDatetime
    organisasjonsnummer: str
    endringstype: str
    endringer: list[PatchOp] | None = None


class _Embedded(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    rows: list[BrregFeedRow] = Field(alias="oppdaterteEnheter")


class BrregFeedBody(BaseModel):
    """The HAL page; brreg leaves ``_embedded`` out when nothing matched."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    embedded: _Embedded | None = Field(default=None, alias="_embedded")

    @property
    def rows(self) -> list[BrregFeedRow]:
        return self.embedded.rows if self.embedded else []


def brreg_change(row: BrregFeedRow) -> FeedChange:
    """The FeedChange of one row.

    Raises:
        FeedMalformed: an unknown ``endringstype`` or an invalid org number.
    """
    change_type = ENDRINGSTYPER.get(row.endringstype)
    if change_type is None:
        raise FeedMalformed(f"brreg feed item {row.oppdateringsid} has an unknown endringstype")
    return FeedChange(
        item_id=str(row.oppdateringsid),
        key=feed_key("NO", row.organisasjonsnummer, FEED),
        type=change_type,
        paths=patch_paths(row.endringer),
        at=row.dato.astimezone(dt.UTC),
    )


def brreg_page(payload: object, position: str, size: int) -> FeedPage:
    """The FeedPage of one parsed answer to a request made from ``position`` with ``size``.

    Raises:
        FeedMalformed: the body's shape, a row's type or number, or ids that do not move forward.
    """
    rows = validated(BrregFeedBody, payload, FEED).rows
    _check_forward([row.oppdateringsid for row in rows], position)
    changes = [brreg_change(row) for row in rows]
    new_position = str(rows[-1].oppdateringsid) if rows else position
    return FeedPage(changes=changes, position=new_position, last=len(rows) < size)


def _check_forward(ids: list[int], position: str) -> None:
    # Ids must rise, and lie past an id position: otherwise the watermark could stall or go back (a loop).
    floor = int(position) if position.isdigit() else -1
    previous = floor
    for item in ids:
        if item <= previous:
            raise FeedMalformed("brreg feed page does not move forward by oppdateringsid")
        previous = item


def brreg_query(position: str) -> dict[str, str]:
    """Where a read from ``position`` starts: ``oppdateringsid=<id+1>`` or a first run's ``dato``.

    Raises:
        FeedError: the stored position is neither form.
    """
    if position.isdigit():
        return {"oppdateringsid": str(int(position) + 1)}
    if position.startswith(_DATO):
        try:
            dt.datetime.fromisoformat(position.removeprefix(_DATO))
        except ValueError:
            pass  # reported below
        else:
            return {"dato": position.removeprefix(_DATO)}
    raise FeedError(f"brreg feed position {position[:64]!r} is not understood; reset the feed's watermark")


class BrregFeed:
    """Enhetsregisteret's unit updates for Norway, ``size`` rows a request."""

    def __init__(self, base_url: str, http: RegistryHttp, *, size: int = DEFAULT_PAGE_SIZE) -> None:
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ValueError(f"brreg feed size must be 1..{MAX_PAGE_SIZE}")
        self.source = feed_source(FEED, "NO")
        self._url = f"{base_url.rstrip('/')}/oppdateringer/enheter"
        self._http = http
        self._size = size

    @property
    def calls(self) -> int:
        return self._http.calls

    def start_position(self, cutover: dt.datetime) -> str:
        """``dato:<cutover in UTC, ms>``: the first page asks for updates published at or after it."""
        stamp = cutover.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return f"{_DATO}{stamp}"

    def pages(self, position: str, now: dt.datetime) -> Iterator[FeedPage]:
        """Pages from ``position`` on until a short one (``now`` is unused: brreg keeps every update)."""
        while True:
            page = self._page(position)
            yield page
            if page.last:
                return
            position = page.position

    def _page(self, position: str) -> FeedPage:
        params = {
            **brreg_query(position),
            "size": str(self._size),
            "sort": "id,ASC",
            "includeChanges": "true",
        }
        page = brreg_page(feed_json(self._http.get(self._url, params=params), FEED), position, self._size)
        log.debug("brreg feed page: %d changes, position %s", len(page.changes), page.position)
        return page
