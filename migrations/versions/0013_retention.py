"""Retention and minimisation: where an audited action came from (``audit_events.context``, hashed when
present) and how many sole-proprietorship samples a dry run withheld (``run_field_changes.withheld``).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("context", sa.JSON(), nullable=True))
    with op.batch_alter_table("run_field_changes") as batch:
        batch.add_column(sa.Column("withheld", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("run_field_changes") as batch:
        batch.drop_column("withheld")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("context")
