"""Revocable credentials, abandoned lease waits, service liveness, Slurm re-attachment.

- users: ``disabled_at`` (a disabled user's token is refused; history stays) and
  ``token_expires_at`` (``--token-ttl``).
- leases: ``watched_until``: a queued lease whose ``--wait`` client stopped polling is
  cancelled once this passes.
- jobs: ``provider_ref``: the dispatched job's provider handle (a Slurm job id), so a
  restarted service re-attaches to it instead of requeueing the job.
- service_clock: when the service was last alive, so a restart forgives workers only the
  outage, not their silence before it.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as t:
        t.add_column(sa.Column("disabled_at", sa.Float, nullable=True))
        t.add_column(sa.Column("token_expires_at", sa.Float, nullable=True))
    with op.batch_alter_table("leases") as t:
        t.add_column(sa.Column("watched_until", sa.Float, nullable=True))
    with op.batch_alter_table("jobs") as t:
        t.add_column(sa.Column("provider_ref", sa.String(200), nullable=True))
    op.create_table(
        "service_clock",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("alive_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("service_clock")
    with op.batch_alter_table("jobs") as t:
        t.drop_column("provider_ref")
    with op.batch_alter_table("leases") as t:
        t.drop_column("watched_until")
    with op.batch_alter_table("users") as t:
        t.drop_column("token_expires_at")
        t.drop_column("disabled_at")
