"""The change-feed tables: watermarks, the CRM key index, the overlap de-duplication, and change events.

- ``watermarks``: one position per connection and *source* (``feed:brreg:NO``, ``feed:proff:NO``,
  ``crm:Account``). A feed's position moves only in the transaction that commits the page's effects.
- ``feed_seen``: items of an overlapping feed (Proff re-reads its last day) already applied, pruned by age.
- ``key_index``: record Id → normalised (country, org number) of one CRM object, nothing else. The full plan
  refreshes it; a changes run first reads what changed in the CRM since the ``crm:<object>`` watermark.
- ``change_events``: per record and mapped field, what a feed change did (``ChangeOutcome``). Values are kept
  only while a change waits in review (or when the connection asks to keep them, within retention).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from worker.ledger.models import ID, Base, utcnow
from worker.ledger.sealed import SealedJSON


def _in(column: str, enum: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(m.value) for m in enum)})"


class ChangeType(StrEnum):
    """A feed item's type, the same for both registries (brreg ``endringstype``, Proff's change types)."""

    NEW = "new"  # brreg Ny, Proff ADDED: ignored unless the CRM holds the org number
    CHANGED = "changed"  # brreg Endring, Proff MUTATED: fetched only if a mapped path changed
    DELETED = "deleted"  # brreg Sletting: mark the status deleted, never blank other fields
    REMOVED = "removed"  # brreg Fjernet, Proff REMOVED: mark the status and purge what the ledger stores
    UNKNOWN = "unknown"  # brreg Ukjent: re-fetch


class ChangeOutcome(StrEnum):
    """What a change did to one field of one record."""

    SYNCED = "synced"  # written (or already right)
    UNMAPPED = "unmapped"  # no mapped path changed: nothing fetched
    REVIEW = "review"  # waits for a person (field policy ``review``)
    APPROVED = "approved"  # a person approved it and it was written
    REJECTED = "rejected"  # a person rejected it: the CRM was left alone
    FAILED = "failed"  # the write failed (the run's failures say why)
    SKIPPED = "skipped"  # not applied, with a reason (opted out, out of scope, invalid, ...)
    PLANNED = (
        "planned"  # a changes run stored the record's chunk; its chunk turns this into the final outcome
    )


class Watermark(Base):
    """How far a connection has read one source; moved only with the effects of what was read."""

    __tablename__ = "watermarks"
    __table_args__ = (UniqueConstraint("connection_id", "source"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    #: ``feed:<provider>:<country>`` or ``crm:<object>``.
    source: Mapped[str] = mapped_column(String(48))
    #: The source's own position: a brreg ``oppdateringsid``, a Proff day (``YYYY-MM-DD``), an ISO timestamp.
    position: Mapped[str | None] = mapped_column(String(64))
    #: The last page read: its size, first and last item, the run that read it (for `regsync feed show`).
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FeedSeen(Base):
    """An item of an overlapping feed already applied (Proff's ``patchId``); pruned once out of the overlap."""

    __tablename__ = "feed_seen"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(String(48), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class KeyIndexEntry(Base):
    """One CRM record's key: its normalised country and org number (None when blank or invalid)."""

    __tablename__ = "key_index"
    __table_args__ = (Index("ix_key_index_key", "connection_id", "object", "country", "org_number"),)

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    object: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    country: Mapped[str | None] = mapped_column(String(2))
    org_number: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ChangeEvent(Base):
    """What one feed change did to one field of one record (or to no record: ``record_id`` None)."""

    __tablename__ = "change_events"
    __table_args__ = (
        CheckConstraint(_in("change_type", ChangeType), name="change_type"),
        CheckConstraint(_in("outcome", ChangeOutcome), name="outcome"),
        Index("ix_change_events_connection_outcome", "connection_id", "outcome", "id"),
        Index("ix_change_events_run", "run_id"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(48))
    #: The feed's id of the item: a brreg ``oppdateringsid``, a Proff ``patchId``.
    item_id: Mapped[str] = mapped_column(String(64))
    change_type: Mapped[str] = mapped_column(String(16))
    country: Mapped[str] = mapped_column(String(2))
    org_number: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str | None] = mapped_column(String(18))
    #: The canonical field (``name``, ``status``, ...); None for a change that touched no mapped field.
    field: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    #: Kept only while the change waits in review (shown to the admin, never logged); sealed
    #: (``ledger/sealed``): encrypted at rest, decrypted when read.
    old_value: Mapped[Any] = mapped_column(SealedJSON, nullable=True)
    new_value: Mapped[Any] = mapped_column(SealedJSON, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
