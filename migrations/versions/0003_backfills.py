"""Backfill / dry-run / protect_manual additions to runs.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # placeholder in the revision chain; the feature that owns it fills it in


def downgrade() -> None:
    pass
