"""Ledger tables of the HTTP API: API keys (stored as a hash) and the connections each key may see."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from worker.ledger.models import ID, Base, utcnow
from worker.roles import Role

# Role lives in worker/roles.py (a domain rule needs it too); the role column holds one, so it is re-exported here.
__all__ = ["ApiKey", "ApiKeyConnection", "Role"]


class ApiKey(Base):
    """One API key: only the sha256 of the key is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role IN ('viewer', 'operator', 'admin')", name="role"),
        Index("ix_api_keys_key_hash", "key_hash", unique=True),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    last_used_at: Mapped[dt.datetime | None]


class ApiKeyConnection(Base):
    """A connection an API key is scoped to; any other connection is invisible to that key."""

    __tablename__ = "api_key_connections"

    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
