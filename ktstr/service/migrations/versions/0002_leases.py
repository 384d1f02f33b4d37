"""Leases: manual holds of one SUT of a class.

Revision ID: 0002_leases
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_leases"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("sutclass_id", sa.Integer, sa.ForeignKey("sutclasses.id"), nullable=False),
        sa.Column("sut_id", sa.Integer, sa.ForeignKey("suts.id"), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("requested_at", sa.Float, nullable=False),
        sa.Column("acquired_at", sa.Float, nullable=True),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("ended_at", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
    )
    op.create_index("ix_leases_owner_id", "leases", ["owner_id"])
    op.create_index("ix_leases_class_state", "leases", ["sutclass_id", "state"])
    op.create_index("ix_leases_sut_state", "leases", ["sut_id", "state"])


def downgrade() -> None:
    op.drop_table("leases")
