"""The registry pump's reported calls: how many of its current attempt's requests are already in the run's count.

A pump that dies (SIGKILL, a ledger outage) cannot report its last calls; whoever takes its run over, or closes the
run, adds what its send tally (worker.sync.send_tally) says it sent beyond ``pump_reported``.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("pump_reported", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("pump_reported")
