"""Job lifecycle: the state moves every path shares, requeue after a lost worker, and
the reaper's sweep.

The hot paths live beside it: ``ktstr.service.db.claims`` assigns queued jobs to workers,
``ktstr.service.db.reports`` records what workers report (started, the result).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from ktstr.declare.base import Frozen
from ktstr.results.model import Verdict
from ktstr.service.auth import Principal
from ktstr.service.db.engine import Database
from ktstr.service.db.leases import sweep
from ktstr.service.db.plans import close_plan_if_done
from ktstr.service.db.tables import JobRow, PlanRow, ServiceClock, SutRow, WorkerRow
from ktstr.service.errors import Conflict, NotFound
from ktstr.service.settings import Settings
from ktstr.service.states import (
    WORKER_TRANSITIONS,
    JobState,
    WorkerState,
    require_job_transition,
    sources,
)

ACTIVE = (JobState.ASSIGNED.value, JobState.RUNNING.value)
UNFINISHED = (JobState.QUEUED.value, *ACTIVE)


class ReapReport(Frozen):
    lost_workers: list[str] = []
    requeued: list[int] = []
    failed: list[int] = []
    timed_out: list[int] = []
    acquired_leases: list[int] = []
    expired_leases: list[int] = []
    cancelled_leases: list[int] = []


def worker_for(s: Session, name: str, who: Principal) -> WorkerRow:
    w = s.scalar(select(WorkerRow).where(WorkerRow.name == name))
    if w is None:
        raise NotFound(f"no worker {name!r}: register it first (ktstr sched worker)")
    who.require_owner(w.owner_id, f"worker {name!r}")
    return w


def move_job(job: JobRow, to: JobState) -> None:
    require_job_transition(f"job {job.id}", JobState(job.state), to)
    job.state = to.value


def requeue_or_fail(s: Session, job: JobRow, reason: str, settings: Settings,
                    now: float) -> JobState:
    """The job's worker is gone: queue it again, or fail it after ``max_tries`` losses."""
    job.lost_count += 1
    plan = s.get(PlanRow, job.plan_id)
    assert plan is not None
    if plan.cancel_requested:
        move_job(job, JobState.CANCELLED)
        job.reasons = [f"{reason}; not requeued: the plan was cancelled"]
    elif job.lost_count >= settings.max_tries:
        move_job(job, JobState.FAILED)
        job.outcome = Verdict.ERROR.value
        job.reasons = [f"{reason}; gave up after {job.lost_count} lost attempts"]
    else:
        move_job(job, JobState.QUEUED)
        job.reasons = [reason]
        job.assigned_at = job.started_at = job.deadline = None
        return JobState.QUEUED
    job.finished_at = now
    close_plan_if_done(s, job.plan_id, now)
    return JobState(job.state)


class WorkerRef(Frozen):
    """What the claim path needs of a worker row; stable for the row's life (the id,
    owner and SUT of a worker name never change), so the routes cache it."""

    id: int
    name: str
    owner_id: int
    sut_id: int
    sutclass_id: int



def worker_ref(db: Database, name: str) -> WorkerRef:
    with db.read() as s:
        row = s.execute(select(WorkerRow.id, WorkerRow.owner_id, SutRow.id, SutRow.sutclass_id)
                        .join(SutRow, SutRow.id == WorkerRow.sut_id)
                        .where(WorkerRow.name == name)).first()
    if row is None:
        raise NotFound(f"no worker {name!r}: register it first (ktstr sched worker)")
    return WorkerRef(id=row[0], name=name, owner_id=row[1], sut_id=row[2],
                     sutclass_id=row[3])


def sql_in(states: Iterable[str]) -> str:
    """``'a', 'b'`` for a SQL ``IN (...)`` of state values (enum values, never input)."""
    return ", ".join(f"'{v}'" for v in states)



def batch_rounds(keys: list[int]) -> list[list[int]]:
    """Indexes of ``keys`` in rounds in which no key repeats, in order (pure): one
    statement must not claim twice for one worker or record one job twice."""
    rounds: list[list[int]] = []
    seen: list[set[int]] = []
    for i, key in enumerate(keys):
        r = next((r for r, keys_of in enumerate(seen) if key not in keys_of), len(rounds))
        if r == len(rounds):
            rounds.append([])
            seen.append(set())
        rounds[r].append(i)
        seen[r].add(key)
    return rounds


def held_job(s: Session, db: Database, job_id: int, w: WorkerRow, attempt: int) -> JobRow:
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


def json_value(value: Any) -> Any:
    """A JSON column's value as the DBAPI driver returns it (psycopg decodes JSON,
    sqlite3 gives its text)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def job_log(db: Database, job_id: int) -> tuple[int, str | None]:
    """(owner id of the job's plan, log path)."""
    with db.read() as s:
        row = s.execute(select(PlanRow.owner_id, JobRow.log_path).join(
            PlanRow, PlanRow.id == JobRow.plan_id).where(JobRow.id == job_id)).first()
    if row is None:
        raise NotFound(f"no job {job_id}")
    return row[0], row[1]


def reap(db: Database, settings: Settings, now: float) -> ReapReport:
    """Mark silent workers lost (requeueing or failing their jobs), end overdue jobs,
    run the lease sweep, and stamp the service's liveness."""
    lost: list[str] = []
    requeued: list[int] = []
    failed: list[int] = []
    timed_out: list[int] = []
    with db.write() as s:
        silent = WorkerRow.last_heartbeat < now - settings.heartbeat_timeout_s
        for worker_id, name in move_workers(s, WorkerState.LOST, silent):
            lost.append(name)
            for job in s.scalars(select(JobRow).where(JobRow.worker_id == worker_id,
                                                      JobRow.state.in_(ACTIVE))):
                new = requeue_or_fail(s, job, f"worker {name} lost (no heartbeat for "
                                      f"{settings.heartbeat_timeout_s:g}s)", settings, now)
                (requeued if new is JobState.QUEUED else failed).append(job.id)
        overdue = s.scalars(select(JobRow).where(JobRow.state.in_(ACTIVE),
                                                 JobRow.deadline < now)).all()
        for job in overdue:
            move_job(job, JobState.TIMED_OUT)
            job.finished_at = now
            job.reasons = [f"no result within the timeout ({job.timeout_s:g}s) plus "
                           f"{settings.timeout_slack_s:g}s slack"]
            timed_out.append(job.id)
            close_plan_if_done(s, job.plan_id, now)
        # plans whose last two jobs ended in concurrent transactions (PostgreSQL): neither
        # saw the other's commit, so close them here
        live = select(JobRow.id).where(JobRow.plan_id == PlanRow.id,
                                       JobRow.state.in_(UNFINISHED))
        for plan_id in s.scalars(select(PlanRow.id).where(PlanRow.completed_at.is_(None),
                                                          ~live.exists())).all():
            close_plan_if_done(s, plan_id, now)
        leases = sweep(s, settings, now)
        stamp_alive(s, now)
    return ReapReport(lost_workers=lost, requeued=requeued, failed=failed,
                      timed_out=timed_out, acquired_leases=leases.acquired,
                      expired_leases=leases.expired, cancelled_leases=leases.cancelled)


def move_worker(w: WorkerRow, to: WorkerState) -> None:
    """Move one worker; ``WorkerRow`` checks it against ``WORKER_TRANSITIONS`` and
    raises ``InvalidTransition`` naming the actual and the wanted state."""
    w.state = to.value


def move_workers(s: Session, to: WorkerState, *where: ColumnElement[bool]
                 ) -> list[tuple[int, str]]:
    """Move every worker matching ``where`` to ``to`` in one UPDATE whose WHERE also
    requires a state that ``WORKER_TRANSITIONS`` lets move to ``to`` (a row-level guard:
    a worker in another state, or one that changed state meanwhile, is left alone).
    Returns the (id, name) of the workers moved, by id."""
    rows = s.execute(update(WorkerRow).where(
        WorkerRow.state.in_(sources(WORKER_TRANSITIONS, to)), *where)
        .values(state=to.value).returning(WorkerRow.id, WorkerRow.name)).all()
    return sorted((worker_id, name) for worker_id, name in rows)


def stamp_alive(s: Session, now: float) -> None:
    """Record that the service is alive now (one row)."""
    row = s.get(ServiceClock, 1)
    if row is None:
        s.add(ServiceClock(id=1, alive_at=now))
    else:
        row.alive_at = now


def mark_alive(db: Database, now: float) -> None:
    with db.write() as s:
        stamp_alive(s, now)


def forgive_outage(db: Database, now: float) -> float:
    """At service start: move every online worker's last heartbeat forward by the time
    the service was down, so the outage does not count as their silence, while silence
    from before the outage still does (a dead worker is not given a fresh timeout at each
    restart). Returns the outage in seconds (0 on the first start)."""
    with db.write() as s:
        alive_at = s.scalar(select(ServiceClock.alive_at).where(ServiceClock.id == 1))
        outage = max(0.0, now - alive_at) if alive_at is not None else 0.0
        if outage:
            # the workers the reaper could mark lost for their silence
            reapable = WorkerRow.state.in_(sources(WORKER_TRANSITIONS, WorkerState.LOST))
            s.execute(update(WorkerRow).where(reapable)
                      .values(last_heartbeat=func.min(WorkerRow.last_heartbeat + outage,
                                                      now)
                              if db.is_sqlite else
                              func.least(WorkerRow.last_heartbeat + outage, now)))
        stamp_alive(s, now)
    return outage
