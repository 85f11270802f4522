"""Alerts, their transitions and deliveries, and the SIEM feed cursor.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KINDS = (
    "'run_failed', 'run_partially_failed', 'run_missed', 'run_stalled', 'run_overran', "
    "'volume_anomaly', 'auth_revoked', 'api_budget_low', 'channel_failing'"
)
_UNRESOLVED = "status != 'resolved'"


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _alerts() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        _ts("detected_at", False),
        _ts("opened_at", False),
        _ts("notify_by", False),
        _ts("notified_at"),
        _ts("acknowledged_at"),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        _ts("escalate_at"),
        _ts("resolved_at"),
        _ts("recovery_sent_at"),
        _ts("retry_at"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'notified', 'acknowledged', 'resolved')", name=op.f("ck_alerts_status")
        ),
        sa.CheckConstraint(f"kind IN ({_KINDS})", name=op.f("ck_alerts_kind")),
        sa.CheckConstraint("detected_at <= opened_at", name=op.f("ck_alerts_detected_before_opened")),
        sa.CheckConstraint("escalation_level >= 0", name=op.f("ck_alerts_escalation_level")),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_alerts_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(
        "uq_alerts_unresolved_key",
        "alerts",
        ["connection_id", "kind", "subject"],
        unique=True,
        postgresql_where=sa.text(_UNRESOLVED),
        sqlite_where=sa.text(_UNRESOLVED),
    )
    op.create_index("ix_alerts_status_retry", "alerts", ["status", "retry_at"], unique=False)
    op.create_index("ix_alerts_status_escalate", "alerts", ["status", "escalate_at"], unique=False)
    op.create_index("ix_alerts_opened", "alerts", ["opened_at"], unique=False)


def _transitions() -> None:
    op.create_table(
        "alert_transitions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", _ID, nullable=False),
        _ts("at", False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "event IN ('opened', 'notified', 'escalated', 'acknowledged', 'resolved')",
            name=op.f("ck_alert_transitions_event"),
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_transitions_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_transitions")),
    )
    op.create_index("ix_alert_transitions_alert", "alert_transitions", ["alert_id", "id"], unique=False)


def _deliveries() -> None:
    op.create_table(
        "alert_deliveries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", _ID, nullable=True),
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("notice", sa.String(length=16), nullable=False),
        _ts("at", False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "notice IN ('alert', 'escalation', 'recovery', 'test')", name=op.f("ck_alert_deliveries_notice")
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_deliveries_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_alert_deliveries_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_deliveries")),
    )
    op.create_index("ix_alert_deliveries_alert", "alert_deliveries", ["alert_id", "id"], unique=False)


def upgrade() -> None:
    _alerts()
    _transitions()
    _deliveries()
    op.create_table(
        "alert_feed_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_transition_id", _ID, nullable=False),
        sa.Column("last_audit_id", _ID, nullable=False),
        _ts("updated_at", False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_alert_feed_cursors")),
    )


def downgrade() -> None:
    op.drop_table("alert_feed_cursors")
    op.drop_index("ix_alert_deliveries_alert", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("ix_alert_transitions_alert", table_name="alert_transitions")
    op.drop_table("alert_transitions")
    op.drop_index("ix_alerts_opened", table_name="alerts")
    op.drop_index("ix_alerts_status_escalate", table_name="alerts")
    op.drop_index("ix_alerts_status_retry", table_name="alerts")
    op.drop_index("uq_alerts_unresolved_key", table_name="alerts")
    op.drop_table("alerts")
