"""Join the leases and plan-files branches (developed side by side).

Revision ID: 0003
Revises: 0002_leases, 0002_plan_files
"""

from __future__ import annotations

revision = "0003"
down_revision = ("0002_leases", "0002_plan_files")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the two branches touch different tables."""


def downgrade() -> None:
    """Nothing to undo."""
