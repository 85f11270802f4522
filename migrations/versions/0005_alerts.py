"""Alerts, their transitions and notice settings.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # placeholder in the revision chain; the feature that owns it fills it in


def downgrade() -> None:
    pass
