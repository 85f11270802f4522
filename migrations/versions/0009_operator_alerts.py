"""Access anomalies: the ``access_anomaly`` alert kind, and installation-wide (operator) alerts without a
connection (``connection_id`` NULL), kept unique while unresolved by a second partial index.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_KINDS = (
    "'run_failed', 'run_partially_failed', 'run_missed', 'run_stalled', 'run_overran', "
    "'volume_anomaly', 'auth_revoked', 'api_budget_low', 'channel_failing'"
)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_OPERATOR_UNRESOLVED = "connection_id IS NULL AND status != 'resolved'"


def _kinds(batch: BatchOperations, kinds: str) -> None:
    batch.drop_constraint(op.f("ck_alerts_kind"), type_="check")
    batch.create_check_constraint(op.f("ck_alerts_kind"), sa.text(f"kind IN ({kinds})"))


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.alter_column("connection_id", existing_type=_ID, nullable=True)
        _kinds(batch, _KINDS + ", 'access_anomaly'")
    with op.batch_alter_table("alert_deliveries") as batch:
        batch.alter_column("connection_id", existing_type=_ID, nullable=True)
    op.create_index(
        "uq_alerts_unresolved_operator_key",
        "alerts",
        ["kind", "subject"],
        unique=True,
        postgresql_where=sa.text(_OPERATOR_UNRESOLVED),
        sqlite_where=sa.text(_OPERATOR_UNRESOLVED),
    )


def downgrade() -> None:
    op.drop_index("uq_alerts_unresolved_operator_key", table_name="alerts")
    op.execute("DELETE FROM alert_deliveries WHERE connection_id IS NULL")
    op.execute("DELETE FROM alerts WHERE connection_id IS NULL OR kind = 'access_anomaly'")
    with op.batch_alter_table("alert_deliveries") as batch:
        batch.alter_column("connection_id", existing_type=_ID, nullable=False)
    with op.batch_alter_table("alerts") as batch:
        batch.alter_column("connection_id", existing_type=_ID, nullable=False)
        _kinds(batch, _KINDS)
