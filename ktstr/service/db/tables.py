"""SQLAlchemy tables. Times are UNIX seconds (float) so every backend compares them alike.

The schema is created by the alembic migrations in ``ktstr/service/migrations``; a unit
test checks that these models and the migrations agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

from ktstr.service.states import WorkerState, require_worker_start, require_worker_transition


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    capabilities: Mapped[str] = mapped_column(String(100))  # comma-separated, sorted
    created_at: Mapped[float] = mapped_column(Float)
    #: set when an admin disables the user: its token is refused, its history stays
    disabled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: the token is refused after this (``--token-ttl``); None: it does not expire
    token_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class SutClassRow(Base):
    __tablename__ = "sutclasses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[float] = mapped_column(Float)


class SutRow(Base):
    __tablename__ = "suts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sutclass_id: Mapped[int] = mapped_column(ForeignKey("sutclasses.id"))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    connection: Mapped[dict[str, Any]] = mapped_column(JSON)
    present: Mapped[bool] = mapped_column(Boolean)  # still in sutclasses.yaml
    created_at: Mapped[float] = mapped_column(Float)


class WorkerRow(Base):
    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)  # == its SUT's name
    sut_id: Mapped[int] = mapped_column(ForeignKey("suts.id"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(20))  # WorkerState
    version: Mapped[str] = mapped_column(String(50))
    session: Mapped[int] = mapped_column(Integer)  # bumped at each register
    registered_at: Mapped[float] = mapped_column(Float)
    last_heartbeat: Mapped[float] = mapped_column(Float)

    @validates("state")
    def _guard_state(self, _key: str, value: str) -> str:
        """Every change of a worker's state passes ``WORKER_TRANSITIONS`` (an
        ``InvalidTransition`` naming the actual and the wanted state), so no code path
        can skip the table. A bulk UPDATE does not come here: ``jobs.move_workers``
        restricts its WHERE to the table's source states instead."""
        wanted = WorkerState(value)
        if self.state is None:  # a new row
            require_worker_start(f"worker {self.name}", wanted)
        else:
            require_worker_transition(f"worker {self.name}", WorkerState(self.state), wanted)
        return value


class PlanRow(Base):
    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    sutclass_id: Mapped[int] = mapped_column(ForeignKey("sutclasses.id"))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    priority: Mapped[int] = mapped_column(Integer)
    publish: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(20), index=True)  # PlanState
    cancel_requested: Mapped[bool] = mapped_column(Boolean)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    total_jobs: Mapped[int] = mapped_column(Integer)
    queued_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    completed_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_plan_state", "plan_id", "state"),
        Index("ix_jobs_cell_state", "cell_key", "state"),
        Index("ix_jobs_worker_state", "worker_id", "state"),
        Index("ix_jobs_state_deadline", "state", "deadline"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    sutclass_id: Mapped[int] = mapped_column(ForeignKey("sutclasses.id"))
    seq: Mapped[int] = mapped_column(Integer)
    cell: Mapped[dict[str, Any]] = mapped_column(JSON)
    cell_key: Mapped[str] = mapped_column(String(500))
    priority: Mapped[int] = mapped_column(Integer)  # copy of the plan's, for the index
    submitted_at: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(20))  # JobState
    outcome: Mapped[str | None] = mapped_column(String(10), nullable=True)  # Verdict
    reasons: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    timeout_s: Mapped[float] = mapped_column(Float)
    attempt: Mapped[int] = mapped_column(Integer)  # claims so far
    lost_count: Mapped[int] = mapped_column(Integer)
    #: the worker of the latest attempt (kept when requeued, to accept its late result)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id"), nullable=True)
    assigned_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    deadline: Mapped[float | None] = mapped_column(Float, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    log_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: a dispatched job's provider handle (``slurm:1234``), to re-attach after a restart
    provider_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)


class PlanFileRow(Base):
    """A file uploaded with a plan: its name in the plan and its content's SHA-256."""

    __tablename__ = "plan_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)


# the claim query: next queued job of a class, highest priority first, then submit time
Index("ix_jobs_dispatch", JobRow.sutclass_id, JobRow.state, JobRow.priority.desc(),
      JobRow.submitted_at, JobRow.id)


class LeaseRow(Base):
    """A manual lease: one SUT of a class held by a user (``sut_id`` once acquired)."""

    __tablename__ = "leases"
    __table_args__ = (
        Index("ix_leases_class_state", "sutclass_id", "state"),
        Index("ix_leases_sut_state", "sut_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    sutclass_id: Mapped[int] = mapped_column(ForeignKey("sutclasses.id"))
    sut_id: Mapped[int | None] = mapped_column(ForeignKey("suts.id"), nullable=True)
    state: Mapped[str] = mapped_column(String(20))  # LeaseState
    priority: Mapped[int] = mapped_column(Integer)
    requested_at: Mapped[float] = mapped_column(Float)
    acquired_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: when an acquired lease runs out unless renewed
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: a queued lease someone waits on (``lease-acquire --wait``) is cancelled when its
    #: waiter has not polled by then; None: nobody waits, it stays queued
    watched_until: Mapped[float | None] = mapped_column(Float, nullable=True)


class ServiceClock(Base):
    """One row: when the service was last alive (the reaper stamps it every sweep)."""

    __tablename__ = "service_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alive_at: Mapped[float] = mapped_column(Float)
