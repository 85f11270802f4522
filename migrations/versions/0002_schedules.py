"""Schedules per connection (issue: admin-enabled scheduling).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # placeholder in the revision chain; the feature that owns it fills it in


def downgrade() -> None:
    pass
