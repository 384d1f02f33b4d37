"""Job lifecycle queries: claim, start, finish, requeue, and the reaper's sweep.

Claims are the hot path: one short write transaction that picks the next queued job of
the worker's class (highest priority, then oldest) and assigns it. On SQLite the
transaction holds the single write lock (``BEGIN IMMEDIATE``); on PostgreSQL the row is
taken with ``FOR UPDATE SKIP LOCKED`` so concurrent claims never wait on each other.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ktstr.declare.base import Frozen
from ktstr.service.auth import Principal
from ktstr.service.db.engine import Database
from ktstr.service.db.leases import acquire_on, leased_sut_ids, sweep, waiting
from ktstr.service.db.plans import close_plan_if_done
from ktstr.service.db.tables import JobRow, PlanRow, SutRow, WorkerRow
from ktstr.service.errors import Conflict, NotFound
from ktstr.service.leases import Kind, first_in_line
from ktstr.service.planner import Cell
from ktstr.service.schemas import Assignment, JobResultIn, JobStart
from ktstr.service.settings import Settings
from ktstr.service.states import (
    JobState,
    Outcome,
    PlanState,
    WorkerState,
    require_job_transition,
)

_ACTIVE = (JobState.ASSIGNED.value, JobState.RUNNING.value)
_UNFINISHED = (JobState.QUEUED.value, *_ACTIVE)


class ReapReport(Frozen):
    lost_workers: list[str] = []
    requeued: list[int] = []
    failed: list[int] = []
    timed_out: list[int] = []
    acquired_leases: list[int] = []
    expired_leases: list[int] = []


def worker_for(s: Session, name: str, who: Principal) -> WorkerRow:
    w = s.scalar(select(WorkerRow).where(WorkerRow.name == name))
    if w is None:
        raise NotFound(f"no worker {name!r}: register it first (ktstr sched worker)")
    who.require_owner(w.owner_id, f"worker {name!r}")
    return w


def _move(job: JobRow, to: JobState) -> None:
    require_job_transition(f"job {job.id}", JobState(job.state), to)
    job.state = to.value


def requeue_or_fail(s: Session, job: JobRow, reason: str, settings: Settings,
                    now: float) -> JobState:
    """The job's worker is gone: queue it again, or fail it after ``max_tries`` losses."""
    job.lost_count += 1
    plan = s.get(PlanRow, job.plan_id)
    assert plan is not None
    if plan.cancel_requested:
        _move(job, JobState.CANCELLED)
        job.reasons = [f"{reason}; not requeued: the plan was cancelled"]
    elif job.lost_count >= settings.max_tries:
        _move(job, JobState.FAILED)
        job.outcome = Outcome.ERROR.value
        job.reasons = [f"{reason}; gave up after {job.lost_count} lost attempts"]
    else:
        _move(job, JobState.QUEUED)
        job.reasons = [reason]
        job.assigned_at = job.started_at = job.deadline = None
        return JobState.QUEUED
    job.finished_at = now
    close_plan_if_done(s, job.plan_id, now)
    return JobState(job.state)


def claim(db: Database, who: Principal, name: str, session: int, settings: Settings,
          now: float) -> Assignment | None:
    """Assign the next queued job of the worker's class to it (Core statements: this is
    the hot path)."""
    with db.write() as s:
        w = s.execute(select(WorkerRow.id, WorkerRow.owner_id, WorkerRow.session,
                             SutRow.sutclass_id, SutRow.id)
                      .join(SutRow, SutRow.id == WorkerRow.sut_id)
                      .where(WorkerRow.name == name)).first()
        if w is None:
            raise NotFound(f"no worker {name!r}: register it first (ktstr sched worker)")
        worker_id, owner_id, current, sutclass_id, sut_id = w
        who.require_owner(owner_id, f"worker {name!r}")
        if session != current:
            raise Conflict(f"worker {name!r} session {session} was replaced by session "
                           f"{current}; register again")
        held = s.scalars(select(JobRow).where(JobRow.worker_id == worker_id,
                                              JobRow.state.in_(_ACTIVE))).all()
        for job in held:  # a worker runs one job at a time: it gave that one up
            requeue_or_fail(s, job, f"worker {name} claimed again while holding it",
                            settings, now)
        if sut_id in leased_sut_ids(s, sutclass_id):
            return None  # a leased SUT receives no jobs
        head = first_in_line(waiting(s, sutclass_id, 1))
        if head is not None and head.kind is Kind.LEASE:  # the lease's turn: it takes the SUT
            acquire_on(s, head.id, sut_id, settings, now)
            return None
        # the row-level guard is ``state = queued`` below; this is the table's word on it
        require_job_transition("a queued job", JobState.QUEUED, JobState.ASSIGNED)
        pick = (select(JobRow.id).where(JobRow.sutclass_id == sutclass_id,
                                        JobRow.state == JobState.QUEUED.value)
                .order_by(JobRow.priority.desc(), JobRow.submitted_at, JobRow.id).limit(1))
        if not db.is_sqlite:  # concurrent claims skip each other's rows instead of waiting
            pick = pick.with_for_update(skip_locked=True)
        row = s.execute(
            update(JobRow).where(JobRow.id == pick.scalar_subquery()).values(
                state=JobState.ASSIGNED.value, attempt=JobRow.attempt + 1,
                worker_id=worker_id, assigned_at=now,
                deadline=now + JobRow.timeout_s + settings.timeout_slack_s)
            .returning(JobRow.id, JobRow.plan_id, JobRow.cell, JobRow.timeout_s,
                       JobRow.attempt)).first()
        if row is None:
            return None
        job_id, plan_id, cell, timeout_s, attempt = row
        limit = timeout_s + settings.timeout_slack_s
        s.execute(update(PlanRow).where(PlanRow.id == plan_id,
                                        PlanRow.state == PlanState.QUEUED.value)
                  .values(state=PlanState.RUNNING.value, started_at=now))
        return Assignment(job_id=job_id, plan_id=plan_id, attempt=attempt,
                          cell=Cell.model_validate(cell), timeout_s=limit)


def _job_of(s: Session, db: Database, job_id: int, w: WorkerRow, attempt: int) -> JobRow:
    q = select(JobRow).where(JobRow.id == job_id)
    if not db.is_sqlite:
        q = q.with_for_update()
    job = s.scalar(q)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.worker_id != w.id or job.attempt != attempt:
        raise Conflict(f"job {job_id} attempt {attempt} is not held by worker {w.name!r}: "
                       f"it is at attempt {job.attempt} ({job.state})")
    return job


def start(db: Database, who: Principal, job_id: int, req: JobStart, now: float) -> None:
    with db.write() as s:
        w = worker_for(s, req.worker, who)
        job = _job_of(s, db, job_id, w, req.attempt)
        _move(job, JobState.RUNNING)
        job.started_at = now


def finish(db: Database, who: Principal, job_id: int, res: JobResultIn, logs_dir: Path,
           now: float) -> JobState:
    log_path = logs_dir / f"job-{job_id}-attempt-{res.attempt}.log"
    with db.write() as s:
        w = worker_for(s, res.worker, who)
        job = _job_of(s, db, job_id, w, res.attempt)
        if res.timed_out:
            _move(job, JobState.TIMED_OUT)
            job.outcome = None
        else:
            _move(job, JobState.FAILED if res.failed else JobState.COMPLETED)
            job.outcome = (res.outcome or Outcome.ERROR).value
        job.reasons = list(res.reasons)
        job.result = dict(res.details)
        job.duration_s = res.duration_s
        job.finished_at = now
        if job.started_at is None:
            job.started_at = now - res.duration_s
        if res.log:
            logs_dir.mkdir(parents=True, exist_ok=True)
            log_path.write_text(res.log)
            job.log_path = str(log_path)
        close_plan_if_done(s, job.plan_id, now)
        return JobState(job.state)


def job_log(db: Database, job_id: int) -> tuple[int, str | None]:
    """(owner id of the job's plan, log path)."""
    with db.read() as s:
        row = s.execute(select(PlanRow.owner_id, JobRow.log_path).join(
            PlanRow, PlanRow.id == JobRow.plan_id).where(JobRow.id == job_id)).first()
    if row is None:
        raise NotFound(f"no job {job_id}")
    return row[0], row[1]


def reap(db: Database, settings: Settings, now: float) -> ReapReport:
    """Mark silent workers lost (requeueing or failing their jobs) and end overdue jobs."""
    lost: list[str] = []
    requeued: list[int] = []
    failed: list[int] = []
    timed_out: list[int] = []
    with db.write() as s:
        silent = s.scalars(select(WorkerRow).where(
            WorkerRow.state == WorkerState.ONLINE.value,
            WorkerRow.last_heartbeat < now - settings.heartbeat_timeout_s)).all()
        for w in silent:
            w.state = WorkerState.LOST.value
            lost.append(w.name)
            for job in s.scalars(select(JobRow).where(JobRow.worker_id == w.id,
                                                      JobRow.state.in_(_ACTIVE))):
                new = requeue_or_fail(s, job, f"worker {w.name} lost (no heartbeat for "
                                      f"{settings.heartbeat_timeout_s:g}s)", settings, now)
                (requeued if new is JobState.QUEUED else failed).append(job.id)
        overdue = s.scalars(select(JobRow).where(JobRow.state.in_(_ACTIVE),
                                                 JobRow.deadline < now)).all()
        for job in overdue:
            _move(job, JobState.TIMED_OUT)
            job.finished_at = now
            job.reasons = [f"no result within the timeout ({job.timeout_s:g}s) plus "
                           f"{settings.timeout_slack_s:g}s slack"]
            timed_out.append(job.id)
            close_plan_if_done(s, job.plan_id, now)
        # plans whose last two jobs ended in concurrent transactions (PostgreSQL): neither
        # saw the other's commit, so close them here
        live = select(JobRow.id).where(JobRow.plan_id == PlanRow.id,
                                       JobRow.state.in_(_UNFINISHED))
        for plan_id in s.scalars(select(PlanRow.id).where(PlanRow.completed_at.is_(None),
                                                          ~live.exists())).all():
            close_plan_if_done(s, plan_id, now)
        leases = sweep(s, settings, now)
    return ReapReport(lost_workers=lost, requeued=requeued, failed=failed,
                      timed_out=timed_out, acquired_leases=leases.acquired,
                      expired_leases=leases.expired)


def touch_workers(db: Database, now: float) -> None:
    """At service start: give every online worker a fresh heartbeat window, so a restart
    of the service does not count as their silence."""
    with db.write() as s:
        s.execute(update(WorkerRow).where(WorkerRow.state == WorkerState.ONLINE.value)
                  .values(last_heartbeat=now))
