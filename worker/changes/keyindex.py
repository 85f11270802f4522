"""The CRM key index: record Id → normalised (country, org number) of one object, and nothing else.

A full plan refreshes it page by page (:func:`refresh_from_plan`, in the planner's transaction). A changes run
first reads only what changed in the CRM since the ``crm:<object>`` watermark (:func:`refresh_delta`, one
SystemModstamp query), which finds Accounts whose org number was added or edited. Feed changes are then matched
to records with one ledger query per batch of keys (:func:`records_for`); :func:`duplicate_keys` gives the
duplicate-org-number report its data.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, func, select, tuple_
from sqlalchemy.orm import Session

from worker.changes.models import KeyIndexEntry, Watermark
from worker.company import CompanyKey
from worker.connections.spec import ConnectionSpec, SalesforceSpec
from worker.crm.port import CrmClient, CrmRecord
from worker.errors import CrmError, InvalidOrgNumber
from worker.ledger.models import utcnow
from worker.ledger.upsert import upsert
from worker.orgnr import normalise

log = logging.getLogger(__name__)

#: Keys per ledger query when matching feed changes (two bound values each).
KEY_BATCH = 500
#: Delta rows per ledger transaction: one Salesforce query page, so the watermark moves with each page.
DELTA_PAGE = 2000

#: (record Id, raw org number, raw country) of one planned record, as the CRM holds them.
PlannedKey = tuple[str, object, object]
SessionFactory = Callable[[], AbstractContextManager[Session]]
#: Told, inside a delta page's transaction, which record Ids got a new valid key on that page.
OnChanged = Callable[[Session, list[str]], None]
_KEY_COLUMNS = ("country", "org_number", "updated_at")


@dataclass(frozen=True, slots=True)
class KeyDelta:
    """What one SystemModstamp read found.

    ``changed`` holds the record Ids whose key was added or changed to a valid one: the changes run syncs them.
    ``rows`` and ``calls`` are what the read cost; ``position`` is the ``crm:<object>`` watermark after it.
    """

    changed: list[str] = field(default_factory=list)
    rows: int = 0
    calls: int = 0
    position: str | None = None


def crm_source(object_name: str) -> str:
    """The watermark source of a CRM object's SystemModstamp reads: ``crm:Account``."""
    return f"crm:{object_name}"


def raw_key(record: CrmRecord, sf: SalesforceSpec) -> tuple[object, object]:
    """The record's org number and country as the CRM holds them (the connection's fixed country if it has one)."""
    return record.get(sf.org_number_field), sf.country or record.get(sf.country_field or "")


def index_key(raw_org: object, raw_country: object) -> tuple[str | None, str | None]:
    """``(country, org number)`` normalised as lookups normalise them; ``(None, None)`` when blank or invalid."""
    country = None if raw_country is None else str(raw_country)
    try:
        org_number = normalise(country, None if raw_org is None else str(raw_org))
    except InvalidOrgNumber:
        return None, None
    return (country or "").strip().upper(), org_number


def refresh_from_plan(
    session: Session,
    connection_id: int,
    object_name: str,
    records: Sequence[PlannedKey],
    *,
    complete_since: dt.datetime | None = None,
) -> None:
    """Store the keys of a planning page's records, in the planner's transaction.

    Args:
        complete_since: The plan read every record of the object and started then: no SystemModstamp read needs
            to reach further back, so the ``crm:<object>`` watermark moves there (never backwards).
    """
    now = utcnow()
    rows = [
        _row(connection_id, object_name, record_id, index_key(raw_org, raw_country), now)
        for record_id, raw_org, raw_country in records
    ]
    upsert(session, KeyIndexEntry.__table__, rows, ("connection_id", "object", "record_id"), _KEY_COLUMNS)
    if complete_since is not None:
        _move_watermark(session, connection_id, crm_source(object_name), complete_since, {"plan": True})


def refresh_delta(
    session_factory: SessionFactory,
    crm: CrmClient,
    connection_id: int,
    spec: ConnectionSpec,
    *,
    on_changed: OnChanged | None = None,
) -> KeyDelta:
    """Read what changed in the CRM since the ``crm:<object>`` watermark and bring the index up to date.

    Each query page is stored in one transaction together with the watermark (the newest SystemModstamp of the
    page), so a read that dies half-way resumes from the last stored page.

    Args:
        on_changed: Called in each page's transaction with the Ids whose key moved on it, so that the caller
            stores what it does about them (plans their sync) together with the index rows and the watermark.
            Without it, a read that fails after a page committed loses that page's Ids: the index already holds
            their new keys, so the next read does not report them again.

    Raises:
        CrmError: The CRM read failed, or answered a record without a valid SystemModstamp.
    """
    sf = spec.salesforce
    with session_factory() as session:
        since = watermark_at(session, connection_id, crm_source(sf.object))
    calls_before, changed, rows, position = crm.calls, [], 0, None
    key_fields = [sf.org_number_field, *([sf.country_field] if sf.country_field else [])]
    for page in _pages(crm.modified_keys(key_fields, since)):
        with session_factory() as session:
            moved = _store_delta_page(session, connection_id, sf, page)
            if on_changed is not None and moved:
                on_changed(session, moved)
            changed += moved
            position = _move_watermark(
                session, connection_id, crm_source(sf.object), _newest(page), _page_details(page)
            )
        rows += len(page)
    log.info(
        "key index delta read",
        extra={
            "connection_id": connection_id,
            "rows": rows,
            "changed": len(changed),
            "calls": crm.calls - calls_before,
        },
    )
    return KeyDelta(changed, rows, crm.calls - calls_before, position)


def records_for(
    session: Session, connection_id: int, object_name: str, keys: Iterable[CompanyKey]
) -> dict[CompanyKey, list[str]]:
    """The record Ids holding each key (keys no record holds are left out), one query per :data:`KEY_BATCH` keys."""
    wanted = list(dict.fromkeys(keys))
    found: dict[CompanyKey, list[str]] = {}
    for start in range(0, len(wanted), KEY_BATCH):
        pairs = [(key.country, key.org_number) for key in wanted[start : start + KEY_BATCH]]
        query = (
            select(KeyIndexEntry.country, KeyIndexEntry.org_number, KeyIndexEntry.record_id)
            .where(
                _of(connection_id, object_name),
                tuple_(KeyIndexEntry.country, KeyIndexEntry.org_number).in_(pairs),
            )
            .order_by(KeyIndexEntry.record_id)
        )
        for country, org_number, record_id in session.execute(query):
            found.setdefault(CompanyKey(str(country), str(org_number)), []).append(record_id)
    return found


def duplicate_keys(
    session: Session, connection_id: int, object_name: str
) -> list[tuple[CompanyKey, list[str]]]:
    """Every key more than one record holds, with those records' Ids (the duplicate-org-number report's data)."""
    entry = KeyIndexEntry
    shared = (
        select(entry.country, entry.org_number)
        .where(_of(connection_id, object_name), entry.org_number.is_not(None))
        .group_by(entry.country, entry.org_number)
        .having(func.count() > 1)
        .subquery()
    )
    query = (
        select(entry.country, entry.org_number, entry.record_id)
        .join(shared, and_(entry.country == shared.c.country, entry.org_number == shared.c.org_number))
        .where(_of(connection_id, object_name))
        .order_by(entry.country, entry.org_number, entry.record_id)
    )
    grouped: dict[CompanyKey, list[str]] = {}
    for country, org_number, record_id in session.execute(query):
        grouped.setdefault(CompanyKey(str(country), str(org_number)), []).append(record_id)
    return list(grouped.items())


def forget(session: Session, connection_id: int, object_name: str, record_ids: Sequence[str]) -> int:
    """Drop the entries of records the CRM no longer has (a re-read left them out); returns how many."""
    if not record_ids:
        return 0
    result = session.execute(
        delete(KeyIndexEntry).where(_of(connection_id, object_name), KeyIndexEntry.record_id.in_(record_ids))
    )
    return int(getattr(result, "rowcount", 0) or 0)


def watermark_at(session: Session, connection_id: int, source: str) -> dt.datetime | None:
    """The instant a timestamp watermark (``crm:<object>``) stands at; None before the first read."""
    position = session.scalar(
        select(Watermark.position).where(Watermark.connection_id == connection_id, Watermark.source == source)
    )
    return None if position is None else dt.datetime.fromisoformat(position)


# --- helpers -------------------------------------------------------------------------------------------------


def _of(connection_id: int, object_name: str) -> Any:
    return and_(KeyIndexEntry.connection_id == connection_id, KeyIndexEntry.object == object_name)


def _row(
    connection_id: int, object_name: str, record_id: str, key: tuple[str | None, str | None], now: dt.datetime
) -> dict[str, Any]:
    country, org_number = key
    return {
        "connection_id": connection_id,
        "object": object_name,
        "record_id": record_id,
        "country": country,
        "org_number": org_number,
        "updated_at": now,
    }


def _pages(records: Iterator[CrmRecord]) -> Iterator[list[CrmRecord]]:
    page: list[CrmRecord] = []
    for record in records:
        page.append(record)
        if len(page) >= DELTA_PAGE:
            yield page
            page = []
    if page:
        yield page


def _store_delta_page(
    session: Session, connection_id: int, sf: SalesforceSpec, page: Sequence[CrmRecord]
) -> list[str]:
    """Upsert the keys that differ from the index; returns the Ids whose key is now a different valid one."""
    keys = {str(record["Id"]): index_key(*raw_key(record, sf)) for record in page}
    stored = session.execute(
        select(KeyIndexEntry.record_id, KeyIndexEntry.country, KeyIndexEntry.org_number).where(
            _of(connection_id, sf.object), KeyIndexEntry.record_id.in_(list(keys))
        )
    )
    before: dict[str, tuple[str | None, str | None]] = {row[0]: (row[1], row[2]) for row in stored}
    moved = {
        record_id: key
        for record_id, key in keys.items()
        if record_id not in before or before[record_id] != key
    }
    now = utcnow()
    rows = [_row(connection_id, sf.object, record_id, key, now) for record_id, key in moved.items()]
    upsert(session, KeyIndexEntry.__table__, rows, ("connection_id", "object", "record_id"), _KEY_COLUMNS)
    return [record_id for record_id, (_country, org) in moved.items() if org is not None]


def _newest(page: Sequence[CrmRecord]) -> dt.datetime:
    """The newest SystemModstamp of a page; a missing or unreadable one fails closed (the watermark would lie)."""
    stamps = []
    for record in page:
        raw = record.get("SystemModstamp")
        try:
            stamps.append(dt.datetime.fromisoformat(str(raw)))
        except ValueError:
            raise CrmError("Salesforce answered a record without a valid SystemModstamp") from None
        if stamps[-1].tzinfo is None:
            raise CrmError("Salesforce answered a SystemModstamp without a time zone")
    return max(stamps)


def _page_details(page: Sequence[CrmRecord]) -> dict[str, Any]:
    return {"rows": len(page), "first": str(page[0]["Id"]), "last": str(page[-1]["Id"])}


def _move_watermark(
    session: Session, connection_id: int, source: str, at: dt.datetime, details: dict[str, Any]
) -> str:
    """Move a timestamp watermark forward to ``at`` (never backwards) with ``details``; returns its position."""
    current = watermark_at(session, connection_id, source)
    newest = at if current is None else max(current, at)
    position = newest.astimezone(dt.UTC).isoformat()
    row = {
        "connection_id": connection_id,
        "source": source,
        "position": position,
        "details": details,
        "updated_at": utcnow(),
    }
    upsert(
        session,
        Watermark.__table__,
        [row],
        ("connection_id", "source"),
        ("position", "details", "updated_at"),
    )
    return position
