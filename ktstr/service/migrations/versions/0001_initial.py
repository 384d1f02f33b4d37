"""Initial schema: users, SUT classes, SUTs, workers, plans, jobs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("capabilities", sa.String(100), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "sutclasses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "suts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sutclass_id", sa.Integer, sa.ForeignKey("sutclasses.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("connection", sa.JSON, nullable=False),
        sa.Column("present", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("sut_id", sa.Integer, sa.ForeignKey("suts.id"), nullable=False),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("session", sa.Integer, nullable=False),
        sa.Column("registered_at", sa.Float, nullable=False),
        sa.Column("last_heartbeat", sa.Float, nullable=False),
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("sutclass_id", sa.Integer, sa.ForeignKey("sutclasses.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("publish", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("total_jobs", sa.Integer, nullable=False),
        sa.Column("queued_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("completed_at", sa.Float, nullable=True),
    )
    op.create_index("ix_plans_owner_id", "plans", ["owner_id"])
    op.create_index("ix_plans_state", "plans", ["state"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("plan_id", sa.Integer, sa.ForeignKey("plans.id"), nullable=False),
        sa.Column("sutclass_id", sa.Integer, sa.ForeignKey("sutclasses.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("cell", sa.JSON, nullable=False),
        sa.Column("cell_key", sa.String(500), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("submitted_at", sa.Float, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=True),
        sa.Column("reasons", sa.JSON, nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("timeout_s", sa.Float, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("lost_count", sa.Integer, nullable=False),
        sa.Column("worker_id", sa.Integer, sa.ForeignKey("workers.id"), nullable=True),
        sa.Column("assigned_at", sa.Float, nullable=True),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("deadline", sa.Float, nullable=True),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("log_path", sa.Text, nullable=True),
    )
    op.create_index("ix_jobs_dispatch", "jobs",
                    ["sutclass_id", "state", sa.text("priority DESC"), "submitted_at", "id"])
    op.create_index("ix_jobs_plan_state", "jobs", ["plan_id", "state"])
    op.create_index("ix_jobs_cell_state", "jobs", ["cell_key", "state"])
    op.create_index("ix_jobs_worker_state", "jobs", ["worker_id", "state"])
    op.create_index("ix_jobs_state_deadline", "jobs", ["state", "deadline"])


def downgrade() -> None:
    for name in ("jobs", "plans", "workers", "suts", "sutclasses", "users"):
        op.drop_table(name)
