"""The registry pump: chunks keep their planned org numbers; runs keep the pump's cursor, lease and claim token.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.add_column(sa.Column("org_keys", sa.JSON(), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("pump_seq", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("pump_lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("pump_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("pump_done", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("pump_done")
        batch.drop_column("pump_attempts")
        batch.drop_column("pump_lease_until")
        batch.drop_column("pump_seq")
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("org_keys")
