"""Backfill / dry-run / protect_manual additions to runs.

Adds the ``protected`` and ``opted_out`` counters to runs and chunks, and ``run_field_changes`` (what a dry
run would change, per field).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COUNTERS = ("protected", "opted_out")


def upgrade() -> None:
    for table in ("runs", "chunks"):
        for name in _COUNTERS:
            op.add_column(table, sa.Column(name, sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "run_field_changes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("samples", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_field_changes_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_field_changes")),
        sa.UniqueConstraint("run_id", "field", name=op.f("uq_run_field_changes_run_id")),
    )


def downgrade() -> None:
    op.drop_table("run_field_changes")
    for table in ("chunks", "runs"):
        with op.batch_alter_table(table) as batch:
            for name in _COUNTERS:
                batch.drop_column(name)
