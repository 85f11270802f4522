"""The ``name_matches`` table: per record without a valid org number, what a name search found and decided.

One row per (connection, object, record). ``name_hash`` is a SHA-256 of the normalised name the search used, so
that a rejected (or unmatched) record is not searched again until its name changes; the CRM name itself is kept
only while the row waits in review, and cleared once it is decided. Candidates are registry data (public).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from worker.ledger.models import ID, Base, utcnow


class MatchStatus(StrEnum):
    """Where a record's name match stands."""

    AUTO = "auto"  # one candidate above the threshold; its org number was written
    REVIEW = (
        "review"  # waits for a person: below the threshold, several close candidates, or a sole proprietor
    )
    APPROVED = "approved"  # a person picked a candidate; its org number was written
    REJECTED = "rejected"  # a person said none fits; not asked again until the name changes
    NO_MATCH = "no_match"  # the registry found nothing; not searched again until the name changes
    SKIPPED = "skipped"  # a sole proprietor with ``sole_proprietors = "skip"``; not asked again either


class NameMatch(Base):
    __tablename__ = "name_matches"
    __table_args__ = (
        UniqueConstraint("connection_id", "object", "record_id", name="uq_name_matches_record"),
        CheckConstraint(
            f"status IN ({', '.join(repr(m.value) for m in MatchStatus)})", name="name_match_status"
        ),
        Index("ix_name_matches_connection_status", "connection_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    object: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(18))
    country: Mapped[str] = mapped_column(String(2))
    name_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    #: The CRM's company name, kept only while the row waits in review (shown to the reviewer, never logged).
    crm_name: Mapped[str | None] = mapped_column(String(255))
    #: ``[{country, org_number, name, legal_form, postal_code, city, score}]``, best first.
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    org_number: Mapped[str | None] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
