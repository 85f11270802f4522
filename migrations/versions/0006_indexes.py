"""Indexes the ledger benchmark showed missing: `runs list` over all connections (newest first).

Without ix_runs_queued_id PostgreSQL seq-scans and sorts every run for `runs list` (p50 ≈ 220 ms at 100,000
runs); with it, it reads 20 index entries. See bench/RESULTS.md.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_queued_id", "runs", ["queued_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_queued_id", table_name="runs")
