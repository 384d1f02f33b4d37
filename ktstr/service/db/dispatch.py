"""Queries of the service-side dispatcher: who it acts as, what its jobs look like now,
and ending a job it cancelled. Claim, start and finish are the pull workers' own
(``ktstr.service.db.claims``, ``ktstr.service.db.reports``), so a dispatched job is
claimed exactly like a pulled one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select, update

from ktstr.contract import Assignment, Cell
from ktstr.declare.base import Frozen
from ktstr.errors import InfraError
from ktstr.service.auth import Capability, Principal
from ktstr.service.db.engine import Database
from ktstr.service.db.jobs import held_job, move_job, move_worker, requeue_or_fail
from ktstr.service.db.plans import close_plan_if_done
from ktstr.service.db.tables import JobRow, PlanRow, User, WorkerRow
from ktstr.service.db.users import principal_of
from ktstr.service.settings import Settings
from ktstr.service.states import JobState, WorkerState

_ACTIVE = (JobState.ASSIGNED.value, JobState.RUNNING.value)


class JobView(Frozen):
    state: JobState
    attempt: int
    cancel_requested: bool


def dispatcher_principal(db: Database) -> Principal:
    """The service acts for its dispatched SUTs as the first enabled admin user."""
    with db.read() as s:
        for user in s.scalars(select(User).where(User.disabled_at.is_(None))
                              .order_by(User.id)):
            who = principal_of(user)
            if Capability.ADMIN in who.capabilities:
                return who
    raise InfraError("no admin user: the dispatcher needs one to own its SUTs' workers")


def job_views(db: Database, job_ids: Sequence[int]) -> dict[int, JobView]:
    if not job_ids:
        return {}
    with db.read() as s:
        rows = s.execute(select(JobRow.id, JobRow.state, JobRow.attempt,
                                PlanRow.cancel_requested)
                         .join(PlanRow, PlanRow.id == JobRow.plan_id)
                         .where(JobRow.id.in_(list(job_ids)))).all()
    return {i: JobView(state=JobState(st), attempt=a, cancel_requested=bool(c))
            for i, st, a, c in rows}


def cancel_job(db: Database, job_id: int, attempt: int, worker: str, reason: str,
               log: str, logs_dir: Path, now: float) -> JobState:
    """End a dispatched job as cancelled (its plan was cancelled), keeping its log."""
    with db.write() as s:
        w = s.scalar(select(WorkerRow).where(WorkerRow.name == worker))
        if w is None:
            raise InfraError(f"no worker row {worker!r} for a dispatched job")
        job = held_job(s, db, job_id, w, attempt)
        move_job(job, JobState.CANCELLED)
        job.reasons = [reason]
        job.finished_at = now
        if job.started_at is not None:
            job.duration_s = now - job.started_at
        if log:
            logs_dir.mkdir(parents=True, exist_ok=True)
            path = logs_dir / f"job-{job_id}-attempt-{attempt}.log"
            path.write_text(log)
            job.log_path = str(path)
        close_plan_if_done(s, job.plan_id, now)
        return JobState(job.state)


class HeldJob(Frozen):
    """A job a dispatched slot held when the previous service run stopped."""

    job: Assignment
    provider_ref: str | None
    assigned_at: float | None
    started: bool


def reattach(db: Database, who: Principal, name: str, sutclass: str, settings: Settings,
             now: float) -> tuple[int, list[HeldJob]]:
    """Register a dispatched slot again *keeping* the jobs it holds (to re-attach to
    them through their provider handle); returns its new session and those jobs."""
    with db.write() as s:
        w = s.scalar(select(WorkerRow).where(WorkerRow.name == name))
        if w is None:
            raise InfraError(f"no worker row {name!r} to re-attach")
        who.require_owner(w.owner_id, f"worker {name!r}")
        w.session += 1
        move_worker(w, WorkerState.ONLINE)
        w.registered_at = w.last_heartbeat = now
        held = s.scalars(select(JobRow).where(JobRow.worker_id == w.id,
                                              JobRow.state.in_(_ACTIVE))).all()
        return w.session, [HeldJob(
            job=Assignment(job_id=j.id, plan_id=j.plan_id, attempt=j.attempt,
                           cell=Cell.model_validate(j.cell),
                           timeout_s=j.timeout_s + settings.timeout_slack_s),
            provider_ref=j.provider_ref, assigned_at=j.assigned_at,
            started=j.state == JobState.RUNNING.value) for j in held]


def record_handle(db: Database, job_id: int, attempt: int, ref: str) -> None:
    """Remember a dispatched job's provider handle (``slurm:1234``) for re-attachment."""
    with db.write() as s:
        s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.attempt == attempt)
                  .values(provider_ref=ref))


def give_up(db: Database, job_id: int, attempt: int, worker: str, reason: str,
            settings: Settings, now: float) -> JobState:
    """A held job that cannot be re-attached: requeue it (or fail it after
    ``max_tries``), as if its worker had been lost."""
    with db.write() as s:
        w = s.scalar(select(WorkerRow).where(WorkerRow.name == worker))
        if w is None:
            raise InfraError(f"no worker row {worker!r} for a dispatched job")
        job = held_job(s, db, job_id, w, attempt)
        return requeue_or_fail(s, job, reason, settings, now)
