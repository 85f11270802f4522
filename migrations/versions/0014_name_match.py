"""Name matching: the ``name_matches`` table (a record's search result and decision) and ``runs.name_searches``
(name searches a run made, or would make in a dry run).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_STATUSES = "'auto', 'review', 'approved', 'rejected', 'no_match', 'skipped'"


def upgrade() -> None:
    op.create_table(
        "name_matches",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("object", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=18), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("name_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("crm_name", sa.String(length=255), nullable=True),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("org_number", sa.String(length=32), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name=op.f("ck_name_matches_name_match_status")),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_name_matches_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_name_matches_run_id_runs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_name_matches")),
        sa.UniqueConstraint("connection_id", "object", "record_id", name=op.f("uq_name_matches_record")),
    )
    op.create_index("ix_name_matches_connection_status", "name_matches", ["connection_id", "status", "id"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("name_searches", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("name_searches")
    op.drop_index("ix_name_matches_connection_status", table_name="name_matches")
    op.drop_table("name_matches")
