"""Ledger table of backfills: what a dry run would change, per field.

``samples`` holds up to three ``{record_id, old, new}`` examples per field. They are CRM and registry values,
the one place the ledger keeps field values at all (everywhere else it keeps hashes): an admin asked for a
preview of exactly those values. They are shown in the CLI output of the admin who runs the dry run (and in
`runs show` JSON only on request), never logged, encrypted at rest (``ledger/sealed``), and go when the run is
deleted (ON DELETE CASCADE) or when the retention policy's age for samples passes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from worker.ledger.models import ID, Base
from worker.ledger.sealed import SealedJSON


class RunFieldChange(Base):
    """How many records a dry run would change in one CRM field, with a few examples."""

    __tablename__ = "run_field_changes"
    __table_args__ = (UniqueConstraint("run_id", "field"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(100))
    count: Mapped[int] = mapped_column(Integer, default=0)
    #: Sealed (``ledger/sealed``): encrypted at rest, decrypted when read.
    samples: Mapped[list[Any]] = mapped_column(SealedJSON, default=list)
    #: Would-be changes of sole proprietorships: counted in ``count``, never kept as samples (personal data).
    withheld: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
