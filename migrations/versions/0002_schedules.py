"""Schedules per connection (issue: admin-enabled scheduling).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("connection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("cron", sa.String(length=120), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("concurrency_policy", sa.String(length=16), nullable=False),
        sa.Column("starting_deadline_s", sa.Integer(), nullable=False),
        sa.Column("grace_s", sa.Integer(), nullable=False),
        sa.Column("last_slot", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_slot", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "concurrency_policy IN ('forbid', 'replace', 'allow')",
            name=op.f("ck_schedules_concurrency_policy"),
        ),
        sa.CheckConstraint("starting_deadline_s >= 0", name=op.f("ck_schedules_starting_deadline")),
        sa.CheckConstraint("grace_s >= 0", name=op.f("ck_schedules_grace")),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_schedules_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
        sa.UniqueConstraint("connection_id", name=op.f("uq_schedules_connection_id")),
    )
    op.create_index("ix_schedules_next_slot", "schedules", ["next_slot"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_schedules_next_slot", table_name="schedules")
    op.drop_table("schedules")
