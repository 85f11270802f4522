"""Ledger tables of alerting: alerts, every transition of an alert, every delivery attempt, SIEM cursors.

The database guards the invariants: one unresolved alert per (connection, kind, subject) through a partial
unique index (PostgreSQL and SQLite both have them), status and kind CHECKs, ``detected_at <= opened_at``.
An installation-wide (operator) alert has no connection; a second partial index keeps those unique too, since
both databases treat NULLs as distinct in a unique index.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from worker.ledger.models import ID, Base, utcnow

#: How an installation-wide (operator) alert names its connection in notices and the SIEM feed.
INSTALLATION = "(installation)"


def owner_name(names: dict[int, str], connection_id: int | None) -> str:
    """The name of an alert's connection, ``INSTALLATION`` for an installation-wide alert."""
    return INSTALLATION if connection_id is None else names.get(connection_id, "?")


class AlertKind(StrEnum):
    RUN_FAILED = "run_failed"
    RUN_PARTIALLY_FAILED = "run_partially_failed"
    RUN_MISSED = "run_missed"
    RUN_STALLED = "run_stalled"
    RUN_OVERRAN = "run_overran"
    VOLUME_ANOMALY = "volume_anomaly"
    AUTH_REVOKED = "auth_revoked"
    API_BUDGET_LOW = "api_budget_low"
    CHANNEL_FAILING = "channel_failing"
    #: A burst of failed authentications from one address, or a key probing other tenants' ids.
    ACCESS_ANOMALY = "access_anomaly"
    #: A change feed can no longer serve from the connection's watermark: run a full reconcile.
    FEED_GAP = "feed_gap"


class AlertStatus(StrEnum):
    OPEN = "open"
    NOTIFIED = "notified"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class AlertEvent(StrEnum):
    """What an alert transition row records."""

    OPENED = "opened"
    NOTIFIED = "notified"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class NoticeKind(StrEnum):
    """Why a notice was sent."""

    ALERT = "alert"
    ESCALATION = "escalation"
    RECOVERY = "recovery"
    TEST = "test"


def _in(column: str, enum: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(m.value) for m in enum)})"


UNRESOLVED = "status != 'resolved'"
OPERATOR_UNRESOLVED = "connection_id IS NULL AND status != 'resolved'"


class Alert(Base):
    """One condition of one connection (or of the installation: no connection), from detection to resolution,
    with its notice deadline."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(_in("status", AlertStatus), name="status"),
        CheckConstraint(_in("kind", AlertKind), name="kind"),
        CheckConstraint("detected_at <= opened_at", name="detected_before_opened"),
        CheckConstraint("escalation_level >= 0", name="escalation_level"),
        Index(
            "uq_alerts_unresolved_key",
            "connection_id",
            "kind",
            "subject",
            unique=True,
            postgresql_where=text(UNRESOLVED),
            sqlite_where=text(UNRESOLVED),
        ),
        Index(
            "uq_alerts_unresolved_operator_key",
            "kind",
            "subject",
            unique=True,
            postgresql_where=text(OPERATOR_UNRESOLVED),
            sqlite_where=text(OPERATOR_UNRESOLVED),
        ),
        Index("ix_alerts_status_retry", "status", "retry_at"),
        Index("ix_alerts_status_escalate", "status", "escalate_at"),
        Index("ix_alerts_opened", "opened_at"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    # None for an installation-wide (operator) alert; readers name it INSTALLATION.
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=AlertStatus.OPEN.value)
    run_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    detected_at: Mapped[dt.datetime]
    opened_at: Mapped[dt.datetime]
    notify_by: Mapped[dt.datetime]
    notified_at: Mapped[dt.datetime | None]
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    escalate_at: Mapped[dt.datetime | None]
    resolved_at: Mapped[dt.datetime | None]
    recovery_sent_at: Mapped[dt.datetime | None]
    retry_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class AlertTransition(Base):
    """One change of an alert (status or escalation level), who made it and when; streamed to the SIEM."""

    __tablename__ = "alert_transitions"
    __table_args__ = (
        CheckConstraint(_in("event", AlertEvent), name="event"),
        Index("ix_alert_transitions_alert", "alert_id", "id"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    event: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    actor: Mapped[str] = mapped_column(String(200))


class AlertDelivery(Base):
    """One attempt to deliver a notice through one channel: the evidence behind "notified in time"."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        CheckConstraint(_in("notice", NoticeKind), name="notice"),
        Index("ix_alert_deliveries_alert", "alert_id", "id"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(40))
    notice: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)


class FeedCursor(Base):
    """How far a feed (the SIEM export) has read the alert transitions and the audit log."""

    __tablename__ = "alert_feed_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_transition_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), default=0)
    last_audit_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
