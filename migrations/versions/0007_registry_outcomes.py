"""Registry outcome counters on runs and chunks.

``out_of_scope`` counts records skipped because the registry does not cover their country; the
``registry_not_found``, ``registry_deleted``, ``registry_inactive`` and ``status_unknown`` counters count the
records the registry said that about (each also has a notice row in ``record_failures``).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COUNTERS = ("out_of_scope", "registry_not_found", "registry_deleted", "registry_inactive", "status_unknown")


def upgrade() -> None:
    for table in ("runs", "chunks"):
        for name in _COUNTERS:
            op.add_column(table, sa.Column(name, sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    for table in ("chunks", "runs"):
        with op.batch_alter_table(table) as batch:
            for name in _COUNTERS:
                batch.drop_column(name)
