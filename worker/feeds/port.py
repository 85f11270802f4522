"""The change-feed port: what a changes run needs from any registry's feed of changed companies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from worker.changes.models import ChangeType
from worker.company import CompanyKey


def feed_source(provider: str, country: str) -> str:
    """The watermark source name of a feed: ``feed:brreg:NO``, ``feed:proff:NO``."""
    return f"feed:{provider}:{country}"


@dataclass(frozen=True, slots=True)
class FeedChange:
    """One item of a feed: a company that changed, how, and (when the feed says) which JSON paths."""

    item_id: str  # brreg oppdateringsid (as str), Proff patchId
    key: CompanyKey  # country and normalised org number
    type: ChangeType
    paths: tuple[str, ...] | None  # JSON-patch paths that changed; None = unknown (treat as all fields)
    at: dt.datetime  # when the registry published it (UTC)


@dataclass(frozen=True, slots=True)
class FeedPage:
    """One answer of a feed; store ``position`` only in the transaction that commits this page's effects."""

    changes: list[FeedChange]
    position: str  # the watermark to store once this page's effects commit
    last: bool  # nothing more to read now (short page / no next / no _embedded)


class ChangeFeed(Protocol):
    """Reads one registry's change feed for one country, GET only, through the connection's rate limiter.

    ``pages`` yields pages in feed order until one is ``last``. It raises FeedGap when the feed can no longer
    serve from ``position`` (a full reconcile is needed), FeedMalformed for a body it does not understand, and
    what RegistryHttp raises (RegistryAuthError, RegistryTransientError). It never skips an item silently.
    """

    source: str  # "feed:brreg:NO", "feed:proff:NO"

    def start_position(self, cutover: dt.datetime) -> str:
        """A first run's position: read what the registry published at or after ``cutover``."""
        ...

    def pages(self, position: str, now: dt.datetime) -> Iterator[FeedPage]: ...

    @property
    def calls(self) -> int:
        """HTTP requests sent (retries included), counted like the providers' ``calls``."""
        ...
