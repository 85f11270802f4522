"""Proff's change feed ``GET {base}/api/changes/register/{country}`` (../shared/PROTOCOLS.md 1.7).

The first request asks ``since=<day>&withPatch=true&types=ADDED&types=REMOVED&types=MUTATED``; the next ones
ask only ``scrollId`` (Proff ignores the other parameters then). Proff keeps 30 days of history: a position
older than that raises FeedGap before any request. ``since`` is a whole day, so the day of the newest change
read is re-read next time; de-duplicating on ``patchId`` (``item_id`` here) is the caller's job.

Assumptions (PROTOCOLS.md marks them so), each encoded in one named place below: the scroll id travels in
``next.href``'s ``scrollId`` parameter; a body without ``next`` or without entities ends the scroll; the
per-entity change type label (ENTITY_TYPE_KEY).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from worker.changes.models import ChangeType
from worker.errors import FeedError, FeedGap, FeedMalformed
from worker.feeds.patch import PatchOp, feed_json, feed_key, patch_paths, validated
from worker.feeds.port import FeedChange, FeedPage, feed_source
from worker.registry.http import RegistryHttp

log = logging.getLogger(__name__)

FEED = "proff"
#: How far back ``since`` may reach (PROTOCOLS.md 1.7: history kept 30 days, confirmed).
HISTORY_DAYS = 30
#: The changes guide sends api-version 1.1 (confirmed); lookups stay on the stable 1.0.
CHANGES_API_VERSION = "1.1"
#: Every type, asked explicitly (the spec's default is all of them too).
TYPES = ("ADDED", "REMOVED", "MUTATED")

#: ASSUMPTION (PROTOCOLS.md 1.7: "per-entity ADDED/REMOVED label: not in the schema"). We read an entity's type
#: from this key, where the sandbox puts it. Without a label, a non-empty patch is MUTATED (CHANGED) and an
#: empty one UNKNOWN (re-fetch). When Proff's real label is known, correct this key and ENTITY_TYPES only.
ENTITY_TYPE_KEY = "changeType"
ENTITY_TYPES: dict[str, ChangeType] = {
    "ADDED": ChangeType.NEW,
    "REMOVED": ChangeType.REMOVED,
    "MUTATED": ChangeType.CHANGED,
}
#: ASSUMPTION (PROTOCOLS.md 1.7): the scroll id is this query parameter of ``next.href``.
SCROLL_PARAMETER = "scrollId"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class ProffEntity(BaseModel):
    """One ChangedEntity: org number, creation time (epoch ms), unique ``patchId``, RFC 6902 patch."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    id: str
    created_date: int = Field(alias="createdDate", ge=0)
    patch_id: str = Field(alias="patchId", min_length=1, max_length=64)  # change_events.item_id is 64 wide
    patch: list[PatchOp] | None = None
    label: str | None = Field(default=None, alias="changeType")  # ENTITY_TYPE_KEY, the assumption


assert ProffEntity.model_fields["label"].alias == ENTITY_TYPE_KEY  # one place to correct: keep them together


class _Link(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    href: str


class ProffChangesBody(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    number_of_hits: int | None = Field(default=None, alias="numberOfHits")
    entities: list[ProffEntity]
    next: _Link | None = None


def entity_type(entity: ProffEntity) -> ChangeType:
    """The entity's label, or (no label) CHANGED for a non-empty patch and UNKNOWN for an empty one.

    Raises:
        FeedMalformed: a label that is not ADDED, REMOVED or MUTATED.
    """
    if entity.label is None:
        return ChangeType.CHANGED if entity.patch else ChangeType.UNKNOWN
    change_type = ENTITY_TYPES.get(entity.label)
    if change_type is None:
        raise FeedMalformed(f"proff feed item {entity.patch_id[:64]} has an unknown change type")
    return change_type


def proff_change(entity: ProffEntity, country: str) -> FeedChange:
    """The FeedChange of one entity (``createdDate`` is its publication time)."""
    return FeedChange(
        item_id=entity.patch_id,
        key=feed_key(country, entity.id, FEED),
        type=entity_type(entity),
        paths=patch_paths(entity.patch),
        at=_EPOCH + dt.timedelta(milliseconds=entity.created_date),
    )


def scroll_id(body: ProffChangesBody) -> str | None:
    """The scroll id of the next batch, None at the end of the scroll (no ``next``, or no entities).

    Raises:
        FeedMalformed: a ``next`` link without a scroll id.
    """
    if body.next is None or not body.entities:
        return None
    found = parse_qs(urlsplit(body.next.href).query).get(SCROLL_PARAMETER)
    if not found or not found[0]:
        raise FeedMalformed(f"proff feed next link has no {SCROLL_PARAMETER}")
    return found[0]


@dataclass(frozen=True, slots=True)
class ProffBatch:
    """One answer: its changes, the scroll id of the next batch (None: the scroll ended) and ``numberOfHits``."""

    changes: list[FeedChange]
    scroll: str | None
    hits: int | None


def proff_batch(payload: object, country: str) -> ProffBatch:
    """The changes of one parsed answer and how the scroll goes on.

    Raises:
        FeedMalformed: the body's shape, an entity's label or number, a ``next`` without a scroll id.
    """
    body = validated(ProffChangesBody, payload, FEED)
    changes = [proff_change(entity, country) for entity in body.entities]
    return ProffBatch(changes, scroll_id(body), body.number_of_hits)


def since_day(position: str, now: dt.datetime) -> dt.date:
    """The day a read from ``position`` asks for.

    Raises:
        FeedError: the position is not a ``YYYY-MM-DD`` day.
        FeedGap: the day is older than Proff's 30 days of history.
    """
    try:
        since = dt.date.fromisoformat(position)
    except ValueError:
        raise FeedError(
            f"proff feed position {position[:64]!r} is not a day; reset the feed's watermark"
        ) from None
    age = (now.astimezone(dt.UTC).date() - since).days
    if age > HISTORY_DAYS:
        raise FeedGap(
            f"proff changes feed keeps {HISTORY_DAYS} days and the watermark {since} is {age} days old; "
            "changes in between cannot be read: run a full reconcile"
        )
    return since


class ProffFeed:
    """Proff's changed companies of one country, one scroll per read."""

    def __init__(self, base_url: str, token: str, http: RegistryHttp, *, country: str = "NO") -> None:
        self.source = feed_source(FEED, country)
        self._url = f"{base_url.rstrip('/')}/api/changes/register/{country}"
        self._country = country
        self._headers = {
            "Authorization": f"Token {token}",
            "api-version": CHANGES_API_VERSION,
            "Accept": "application/json",
        }
        self._http = http

    @property
    def calls(self) -> int:
        return self._http.calls

    def start_position(self, cutover: dt.datetime) -> str:
        """The cutover's day (UTC)."""
        return cutover.astimezone(dt.UTC).date().isoformat()

    def pages(self, position: str, now: dt.datetime) -> Iterator[FeedPage]:
        """One scroll from ``position``'s day.

        Proff's order within a scroll is unknown (an assumption either way), so a page before the last keeps
        ``position``: a worker that dies mid-scroll re-reads it, and ``patchId`` de-duplication absorbs that.
        The last page moves the position to the newest day read (never back).
        """
        since = since_day(position, now)
        newest, read = since, 0
        query = [("since", since.isoformat()), ("withPatch", "true"), *(("types", t) for t in TYPES)]
        limit: int | None = None
        while True:
            batch = self._get(query)
            limit = batch.hits if limit is None else limit
            read += len(batch.changes)
            if limit is not None and read > limit:
                raise FeedMalformed("proff feed scroll returned more entities than its numberOfHits")
            newest = max([newest, *(change.at.date() for change in batch.changes)])
            if batch.scroll is None:
                yield FeedPage(changes=batch.changes, position=newest.isoformat(), last=True)
                return
            yield FeedPage(changes=batch.changes, position=position, last=False)
            query = [(SCROLL_PARAMETER, batch.scroll)]

    def _get(self, query: list[tuple[str, str]]) -> ProffBatch:
        # QueryParams, not a dict: ``types`` repeats (and a query inside the URL would be dropped by httpx.URL).
        response = self._http.get(self._url, params=httpx.QueryParams(tuple(query)), headers=self._headers)
        batch = proff_batch(feed_json(response, FEED), self._country)
        log.debug("proff feed page: %d changes", len(batch.changes))
        return batch
