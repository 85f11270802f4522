"""Change-feed runs: run and schedule modes, the planner's change counts, the ``review`` counter, the
``feed_gap`` alert kind, and the tables of worker.changes.models (watermarks, feed_seen, key_index,
change_events).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KINDS = (
    "'run_failed', 'run_partially_failed', 'run_missed', 'run_stalled', 'run_overran', "
    "'volume_anomaly', 'auth_revoked', 'api_budget_low', 'channel_failing', 'access_anomaly'"
)
_RUN_COUNTS = ("feed_pages", "changes_seen", "changes_matched", "changes_unmapped")
_CHANGE_TYPES = "'new', 'changed', 'deleted', 'removed', 'unknown'"
_OUTCOMES = "'synced', 'unmapped', 'review', 'approved', 'rejected', 'failed', 'skipped', 'planned'"


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _connection_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["connection_id"],
        ["connections.id"],
        name=op.f(f"fk_{table}_connection_id_connections"),
        ondelete="CASCADE",
    )


def _modes() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("mode", sa.String(length=16), nullable=False, server_default="full"))
        for name in _RUN_COUNTS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
        batch.drop_constraint(op.f("uq_runs_connection_id"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_runs_connection_id"), ["connection_id", "mode", "scheduled_for"]
        )
        batch.create_check_constraint(op.f("ck_runs_mode"), sa.text("mode IN ('full', 'changes')"))
    for table in ("runs", "chunks"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("review", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("schedules") as batch:
        batch.add_column(sa.Column("mode", sa.String(length=16), nullable=False, server_default="full"))
        batch.drop_constraint(op.f("uq_schedules_connection_id"), type_="unique")
        batch.create_unique_constraint(op.f("uq_schedules_connection_id"), ["connection_id", "mode"])
        batch.create_check_constraint(op.f("ck_schedules_mode"), sa.text("mode IN ('full', 'changes')"))
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint(op.f("ck_alerts_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_alerts_kind"), sa.text(f"kind IN ({_KINDS}, 'feed_gap')"))


def _watermarks() -> None:
    op.create_table(
        "watermarks",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("source", sa.String(length=48), nullable=False),
        sa.Column("position", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        _ts("updated_at", False),
        _connection_fk("watermarks"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watermarks")),
        sa.UniqueConstraint("connection_id", "source", name=op.f("uq_watermarks_connection_id")),
    )
    op.create_table(
        "feed_seen",
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("source", sa.String(length=48), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        _ts("seen_at", False),
        _connection_fk("feed_seen"),
        sa.PrimaryKeyConstraint("connection_id", "source", "item_id", name=op.f("pk_feed_seen")),
    )


def _key_index() -> None:
    op.create_table(
        "key_index",
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("object", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=18), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("org_number", sa.String(length=32), nullable=True),
        _ts("updated_at", False),
        _connection_fk("key_index"),
        sa.PrimaryKeyConstraint("connection_id", "object", "record_id", name=op.f("pk_key_index")),
    )
    op.create_index("ix_key_index_key", "key_index", ["connection_id", "object", "country", "org_number"])


def _change_events() -> None:
    op.create_table(
        "change_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("source", sa.String(length=48), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("change_type", sa.String(length=16), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("org_number", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.String(length=18), nullable=True),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("old_value", sa.JSON(), nullable=True),
        sa.Column("new_value", sa.JSON(), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        _ts("decided_at"),
        _ts("created_at", False),
        sa.CheckConstraint(f"change_type IN ({_CHANGE_TYPES})", name=op.f("ck_change_events_change_type")),
        sa.CheckConstraint(f"outcome IN ({_OUTCOMES})", name=op.f("ck_change_events_outcome")),
        _connection_fk("change_events"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_change_events_run_id_runs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_events")),
    )
    op.create_index(
        "ix_change_events_connection_outcome", "change_events", ["connection_id", "outcome", "id"]
    )
    op.create_index("ix_change_events_run", "change_events", ["run_id"])


def upgrade() -> None:
    _modes()
    _watermarks()
    _key_index()
    _change_events()


def downgrade() -> None:
    for table in ("change_events", "key_index", "feed_seen", "watermarks"):
        op.drop_table(table)
    op.execute("DELETE FROM alerts WHERE kind = 'feed_gap'")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint(op.f("ck_alerts_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_alerts_kind"), sa.text(f"kind IN ({_KINDS})"))
    op.execute("DELETE FROM schedules WHERE mode != 'full'")
    with op.batch_alter_table("schedules") as batch:
        batch.drop_constraint(op.f("ck_schedules_mode"), type_="check")
        batch.drop_constraint(op.f("uq_schedules_connection_id"), type_="unique")
        batch.create_unique_constraint(op.f("uq_schedules_connection_id"), ["connection_id"])
        batch.drop_column("mode")
    for table in ("chunks", "runs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("review")
    op.execute("DELETE FROM runs WHERE mode != 'full'")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(op.f("ck_runs_mode"), type_="check")
        batch.drop_constraint(op.f("uq_runs_connection_id"), type_="unique")
        batch.create_unique_constraint(op.f("uq_runs_connection_id"), ["connection_id", "scheduled_for"])
        for name in _RUN_COUNTS:
            batch.drop_column(name)
        batch.drop_column("mode")
