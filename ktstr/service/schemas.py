"""Wire schemas (requests and responses), kept apart from the database tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from ktstr.contract import Assignment, Cell
from ktstr.declare.base import Frozen
from ktstr.results.model import Verdict
from ktstr.service.auth import Capability
from ktstr.service.plan import Plan
from ktstr.service.states import JobState, PlanState, WorkerState


def ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class VersionOut(Frozen):
    version: str
    protocol: int


#: the longest token lifetime a request may ask for (ten years)
MAX_TOKEN_TTL_S = 10 * 365 * 24 * 3600.0


class UserCreate(Frozen):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    capabilities: list[Capability] = Field(min_length=1)
    token_ttl_s: float | None = Field(None, gt=0, le=MAX_TOKEN_TTL_S,
                                      description="the token expires this many seconds "
                                                  "from now (default: never)")


class TokenRotate(Frozen):
    token_ttl_s: float | None = Field(None, gt=0, le=MAX_TOKEN_TTL_S,
                                      description="the new token expires this many "
                                                  "seconds from now (default: never)")


class UserOut(Frozen):
    id: int
    name: str
    capabilities: list[Capability]
    created_at: datetime
    disabled_at: datetime | None = None
    token_expires_at: datetime | None = None


class UserDisabled(Frozen):
    user: UserOut
    cancelled_plans: list[int] = Field(description="its queued or running plans, cancelled")
    ended_leases: list[int] = Field(description="its queued leases (cancelled) and "
                                                "acquired ones (released)")


class UserCreated(UserOut):
    token: str = Field(description="shown once; the service stores only its hash")


class SutClassOut(Frozen):
    id: int
    name: str
    enabled: bool
    suts_total: int
    suts_in_use: int
    usage: float | None = Field(description="busy share of SUT time in the window "
                                            "(only with from/to)")
    window_from: datetime | None
    window_to: datetime | None
    created_at: datetime


class PlanSubmit(Frozen):
    plan: Plan
    priority: int | None = Field(None, ge=0, le=100)
    publish: bool = True


class PlanUpdate(Frozen):
    priority: int = Field(ge=0, le=100)


class PlanOut(Frozen):
    id: int
    name: str | None
    owner: str
    sutclass: str
    priority: int
    publish: bool
    state: PlanState
    total_jobs: int
    completed_jobs: int = Field(description="jobs completed (ran to a verdict); cancelled, "
                                            "failed and timed-out jobs are not counted: "
                                            "see job_states")
    job_states: dict[JobState, int]
    outcomes: dict[Verdict, int]
    queued_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    eta_s: float | None = Field(description="estimated seconds until the plan finishes")


class JobOut(Frozen):
    id: int
    plan_id: int
    seq: int
    cell: Cell
    state: JobState
    outcome: Verdict | None
    reasons: list[str]
    attempt: int
    worker: str | None
    submitted_at: datetime
    assigned_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None


class WorkerRegister(Frozen):
    name: str = Field(min_length=1, max_length=200)
    sutclass: str = Field(min_length=1, max_length=200)
    version: str = Field(max_length=50)
    protocol: int


class WorkerSession(Frozen):
    name: str
    sutclass: str
    session: int
    heartbeat_interval_s: float
    timeout_slack_s: float
    protocol: int
    server_version: str
    requeued_jobs: list[int] = Field(description="jobs a previous run of this worker held")


class WorkerOut(Frozen):
    name: str
    sutclass: str
    owner: str
    state: WorkerState
    version: str
    registered_at: datetime
    last_heartbeat: datetime
    job_id: int | None


class Heartbeat(Frozen):
    session: int
    job_id: int | None = None
    attempt: int | None = None


class WorkerGoodbye(Frozen):
    session: int


class HeartbeatReply(Frozen):
    abort: bool = Field(description="the worker's job is no longer its own: stop running it")
    reason: str | None = None


class ClaimRequest(Frozen):
    session: int
    wait_s: float = Field(0.0, ge=0)


class ClaimReply(Frozen):
    job: Assignment | None


class JobStart(Frozen):
    worker: str
    attempt: int


class JobResultIn(Frozen):
    worker: str
    attempt: int
    failed: bool = Field(False, description="the runner could not produce a verdict")
    timed_out: bool = Field(False, description="the worker ended the run at its timeout")
    outcome: Verdict | None = None
    reasons: list[str] = Field(default_factory=list)
    duration_s: float = Field(ge=0)
    details: dict[str, Any] = Field(default_factory=dict)
    log: str = Field("", description="the run's log (the worker keeps its tail if huge)")


class PlanFileOut(Frozen):
    """A file uploaded with a plan (fetch it from ``/files/{sha256}``)."""

    name: str
    sha256: str
    size: int


class PlanResubmit(Frozen):
    failed_only: bool = Field(False, description="only the jobs that failed, timed out or "
                                                 "ended with outcome error/fail")
    priority: int | None = Field(None, ge=0, le=100)
