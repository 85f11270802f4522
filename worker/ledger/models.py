"""SQLAlchemy models of the job ledger. The database guards the invariants (enums, CHECKs, uniques).

Works on PostgreSQL (production) and SQLite (embedded). Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware timestamp that comes back aware on SQLite too (stored as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; use an aware UTC datetime")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED_BUDGET = "paused_budget"
    SUCCEEDED = "succeeded"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def final(self) -> bool:
        return self in FINAL_RUN_STATES


FINAL_RUN_STATES = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.PARTIALLY_FAILED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.SKIPPED,
    }
)


class RunKind(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    BACKFILL = "backfill"


class RunMode(StrEnum):
    """What a run reads: every record of the CRM (``full``, the reconcile) or only what changed (``changes``).

    A run's ``kind`` says who started it (scheduled, manual, backfill); its ``mode`` says what it reads, so a
    scheduled changes run is both.
    """

    FULL = "full"
    CHANGES = "changes"


class ChunkStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_CHUNK_STATES = frozenset({ChunkStatus.DONE, ChunkStatus.FAILED, ChunkStatus.CANCELLED})


def _in(column: str, enum: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(m.value) for m in enum)})"


class Connection(Base):
    """One Salesforce org + one registry account, as applied from a connection file."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    spec: Mapped[dict[str, Any]]
    spec_hash: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Secret(Base):
    """An encrypted secret of a connection (registry token, Salesforce client secret or private key)."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("connection_id", "name"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[str] = mapped_column(Text)
    mask: Mapped[str] = mapped_column(String(16))
    set_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SyncCounters:
    """The columns of ``worker.ledger.counters.Counts``: what a chunk counted, and a run summed over its chunks
    (same names, same order: tests/unit/test_counters.py)."""

    fetched: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # Fields left alone because someone edited them by hand (protect_manual); records that opted out.
    protected: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    opted_out: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Records skipped because the registry does not cover their country (a record fate, like opted_out).
    out_of_scope: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What the registry said beyond data, one notice row each; these records also count in their fate.
    registry_not_found: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    registry_deleted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    registry_inactive: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status_unknown: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Field changes sent to review (field policy ``review``) instead of being written.
    review: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    registry_calls: Mapped[int] = mapped_column(Integer, default=0)
    crm_calls: Mapped[int] = mapped_column(Integer, default=0)


class Run(SyncCounters, Base):
    """One mass update of one connection: its state, times and counts."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("connection_id", "mode", "scheduled_for"),
        CheckConstraint(_in("status", RunStatus), name="status"),
        CheckConstraint(_in("kind", RunKind), name="kind"),
        CheckConstraint(_in("mode", RunMode), name="mode"),
        CheckConstraint("chunks_done <= chunks_total", name="chunk_counter"),
        Index("ix_runs_connection_queued", "connection_id", "queued_at"),
        Index("ix_runs_status_queued", "status", "queued_at"),
        Index("ix_runs_queued_id", "queued_at", "id"),  # `runs list`: newest first, LIMIT n (bench/ledger.py)
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    #: Name searches the run made (also in ``registry_calls``), or in a dry run would have made (worker.matching).
    name_searches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(
        String(16), default=RunMode.FULL.value, server_default=RunMode.FULL.value
    )
    status: Mapped[str] = mapped_column(String(24), default=RunStatus.QUEUED.value)
    triggered_by: Mapped[str] = mapped_column(String(200))
    scheduled_for: Mapped[dt.datetime | None]
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    queued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    planned_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    plan_cursor: Mapped[str | None] = mapped_column(String(18))
    plan_lease_until: Mapped[dt.datetime | None]
    #: Times planning was started or resumed; the current planner's claim token (worker.sync.plan).
    plan_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The registry pump (worker.sync.pump): next chunk seq to fetch, lease, claim token, finished.
    pump_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    pump_lease_until: Mapped[dt.datetime | None]
    pump_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    pump_done: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Requests of the current pump attempt already added to ``registry_calls`` (worker.sync.pump_ledger).
    pump_reported: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    planned: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    #: A changes run's planner counts (worker.changes): feed pages read, feed items seen, items matched to a
    #: record of this CRM, matched items skipped because no mapped path changed.
    feed_pages: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    changes_seen: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    changes_matched: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    changes_unmapped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    api_used_before: Mapped[int | None] = mapped_column(Integer)
    api_used_after: Mapped[int | None] = mapped_column(Integer)
    api_limit: Mapped[int | None] = mapped_column(Integer)


class Chunk(SyncCounters, Base):
    """Up to 200 CRM record Ids of a run, synced by one task; claimed and finished by compare-and-set."""

    __tablename__ = "chunks"
    __table_args__ = (
        UniqueConstraint("run_id", "seq"),
        CheckConstraint(_in("status", ChunkStatus), name="status"),
        Index("ix_chunks_status_lease", "status", "lease_until"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=ChunkStatus.QUEUED.value)
    record_ids: Mapped[list[Any]]
    #: The chunk's planned org numbers (``CC:orgnr``, unique), for the registry pump; None: planned before it.
    org_keys: Mapped[list[Any] | None]
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    enqueued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    lease_until: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class RecordFailure(Base):
    """One record that could not be synced in a run, with a sanitised reason (never field values or tokens)."""

    __tablename__ = "record_failures"
    __table_args__ = (
        UniqueConstraint("run_id", "record_id"),
        Index("ix_record_failures_run", "run_id", "id"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    chunk_id: Mapped[int | None] = mapped_column(ForeignKey("chunks.id", ondelete="CASCADE"))
    record_id: Mapped[str] = mapped_column(String(18))
    org_number: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RecordWrite(Base):
    """What regsync last wrote to one CRM field: a hash, never the value.

    Before a PATCH the sync stores a *pending* hash for this run; after the PATCH it confirms it. A chunk
    redelivered after a crash can so tell "already written by this run" from "unchanged", and
    ``protect_manual`` compares the CRM's current value with the confirmed hash to spot manual edits.
    """

    __tablename__ = "record_writes"
    __table_args__ = (UniqueConstraint("connection_id", "record_id", "field"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    record_id: Mapped[str] = mapped_column(String(18))
    field: Mapped[str] = mapped_column(String(100))
    value_hash: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    pending_hash: Mapped[str | None] = mapped_column(String(64))
    pending_run_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    written_at: Mapped[dt.datetime | None]


class AuditEvent(Base):
    """An admin action, hash-chained to the one before it so that edits and deletions are detectable."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Where the action came from (worker.ledger.origin); hashed when present. None for older events.
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
