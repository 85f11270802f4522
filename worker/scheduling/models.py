"""The ``schedules`` table: one cron schedule per connection, with its catch-up cursor and next deadline."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from worker.ledger.models import ID, Base, utcnow

DEFAULT_STARTING_DEADLINE_S = 3600
#: How long after its slot a run may go unstarted before alerting calls the slot missed (15 min).
DEFAULT_GRACE_S = 900


class Concurrency(StrEnum):
    """What a slot does while a run of the same connection is still active."""

    FORBID = "forbid"  # record the slot as a skipped run
    REPLACE = "replace"  # ask the active run to cancel, start the new one
    ALLOW = "allow"  # start the new one alongside


class Schedule(Base):
    """When a connection's mass update runs by itself (only while the connection is enabled).

    ``last_slot`` is the newest slot the beat tick has dealt with (run, skipped or missed); ``next_slot`` is
    the first slot after it, a deadline column the tick (and the missed-run detector) query by index.
    """

    __tablename__ = "schedules"
    __table_args__ = (
        CheckConstraint("concurrency_policy IN ('forbid', 'replace', 'allow')", name="concurrency_policy"),
        CheckConstraint("starting_deadline_s >= 0", name="starting_deadline"),
        CheckConstraint("grace_s >= 0", name="grace"),
        CheckConstraint("mode IN ('full', 'changes')", name="mode"),
        UniqueConstraint("connection_id", "mode"),
        Index("ix_schedules_next_slot", "next_slot"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    #: What the schedule's runs read (worker.ledger.models.RunMode): the full reconcile, or only changes.
    mode: Mapped[str] = mapped_column(String(16), default="full", server_default="full")
    cron: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64))
    concurrency_policy: Mapped[str] = mapped_column(String(16), default=Concurrency.FORBID.value)
    starting_deadline_s: Mapped[int] = mapped_column(Integer, default=DEFAULT_STARTING_DEADLINE_S)
    grace_s: Mapped[int] = mapped_column(Integer, default=DEFAULT_GRACE_S)
    last_slot: Mapped[dt.datetime | None]
    next_slot: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
