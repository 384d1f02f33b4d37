"""Plans: submit (plan + jobs in one transaction), list with progress and ETA, change
priority, cancel."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from ktstr.contract import Cell
from ktstr.declare.base import Frozen
from ktstr.results.model import Verdict
from ktstr.service.auth import Principal
from ktstr.service.db.engine import Database
from ktstr.service.db.tables import (
    JobRow,
    PlanFileRow,
    PlanRow,
    SutClassRow,
    SutRow,
    User,
    WorkerRow,
)
from ktstr.service.errors import Conflict, NotFound
from ktstr.service.eta import PendingJob, plan_eta
from ktstr.service.plan import Plan
from ktstr.service.schemas import JobOut, PlanOut, ts
from ktstr.service.states import (
    TERMINAL_JOB_STATES,
    JobState,
    PlanState,
    require_job_transition,
    require_plan_transition,
)

_TERMINAL = [s.value for s in TERMINAL_JOB_STATES]
_UNFINISHED = [s.value for s in JobState if s not in TERMINAL_JOB_STATES]


class PlanFilter(Frozen):
    plan_id: int | None = None
    owner_ids: list[int] | None = None  # None: every user
    states: list[PlanState] | None = None  # None: every state
    page: int | None = None  # 1-based; None: every plan
    page_size: int = 50


def submit_plan(db: Database, owner: Principal, plan: Plan, cells: Sequence[Cell],
                sutclass_id: int, priority: int, publish: bool, now: float,
                files: Sequence[tuple[str, str, int]] = ()) -> int:
    """Insert the plan, its jobs and its uploaded files ``(name, sha256, size)``."""
    with db.write() as s:
        row = PlanRow(owner_id=owner.id, sutclass_id=sutclass_id, name=plan.name,
                      priority=priority, publish=publish, state=PlanState.QUEUED.value,
                      cancel_requested=False, document=plan.model_dump(mode="json"),
                      total_jobs=len(cells), queued_at=now)
        s.add(row)
        s.flush()
        s.execute(insert(JobRow), [
            {"plan_id": row.id, "sutclass_id": sutclass_id, "seq": i,
             "cell": c.model_dump(mode="json"), "cell_key": c.key, "priority": priority,
             "submitted_at": now, "state": JobState.QUEUED.value, "timeout_s": c.timeout_s,
             "attempt": 0, "lost_count": 0}
            for i, c in enumerate(cells)
        ])
        if files:
            s.execute(insert(PlanFileRow), [
                {"plan_id": row.id, "name": n, "sha256": h, "size": z} for n, h, z in files])
        return row.id


def _load_plan(s: Session, plan_id: int, *, lock: bool = False) -> PlanRow:
    q = select(PlanRow).where(PlanRow.id == plan_id)
    if lock:
        q = q.with_for_update()
    row = s.scalar(q)
    if row is None:
        raise NotFound(f"no plan {plan_id}")
    return row


def plan_owner(db: Database, plan_id: int) -> int:
    with db.read() as s:
        return _load_plan(s, plan_id).owner_id


def _plan_out(s: Session, row: PlanRow, owner: str, sutclass: str, now: float) -> PlanOut:
    counts = {JobState(st): n for st, n in s.execute(
        select(JobRow.state, func.count()).where(JobRow.plan_id == row.id)
        .group_by(JobRow.state))}
    outcomes = {Verdict(str(o)): n for o, n in s.execute(
        select(JobRow.outcome, func.count()).where(
            JobRow.plan_id == row.id, JobRow.outcome.is_not(None)).group_by(JobRow.outcome))}
    done = sum(n for st, n in counts.items() if st.terminal)
    eta: float | None = 0.0
    if row.state in (PlanState.QUEUED, PlanState.RUNNING) and done < row.total_jobs:
        pending = [PendingJob(cell_key=k, timeout_s=t, state=JobState(st), started_at=st_at)
                   for k, t, st, st_at in s.execute(
                       select(JobRow.cell_key, JobRow.timeout_s, JobRow.state,
                              JobRow.started_at).where(
                           JobRow.plan_id == row.id, JobRow.state.not_in(_TERMINAL)))]
        keys = sorted({p.cell_key for p in pending})
        history = {k: float(d) for k, d in s.execute(
            select(JobRow.cell_key, func.avg(JobRow.duration_s)).where(
                JobRow.cell_key.in_(keys), JobRow.state == JobState.COMPLETED.value,
                JobRow.duration_s.is_not(None)).group_by(JobRow.cell_key))}
        suts = s.scalar(select(func.count()).select_from(SutRow).where(
            SutRow.sutclass_id == row.sutclass_id, SutRow.present)) or 0
        eta = plan_eta(pending, history, suts, now)
    elif row.state is not PlanState.COMPLETED and done < row.total_jobs:
        eta = None
    return PlanOut(
        id=row.id, name=row.name, owner=owner, sutclass=sutclass, priority=row.priority,
        publish=row.publish, state=PlanState(row.state), total_jobs=row.total_jobs,
        completed_jobs=counts.get(JobState.COMPLETED, 0), job_states=counts,
        outcomes=outcomes,
        queued_at=ts(row.queued_at),
        started_at=ts(row.started_at), completed_at=ts(row.completed_at), eta_s=eta)


def list_plans(db: Database, flt: PlanFilter, now: float) -> list[PlanOut]:
    q = (select(PlanRow, User.name, SutClassRow.name)
         .join(User, User.id == PlanRow.owner_id)
         .join(SutClassRow, SutClassRow.id == PlanRow.sutclass_id)
         .order_by(PlanRow.id))
    if flt.plan_id is not None:
        q = q.where(PlanRow.id == flt.plan_id)
    if flt.owner_ids is not None:
        q = q.where(PlanRow.owner_id.in_(flt.owner_ids))
    if flt.states is not None:
        q = q.where(PlanRow.state.in_([st.value for st in flt.states]))
    if flt.page is not None:
        q = q.offset((flt.page - 1) * flt.page_size).limit(flt.page_size)
    with db.read() as s:
        rows = s.execute(q).all()
        if flt.plan_id is not None and not rows:
            raise NotFound(f"no plan {flt.plan_id}")
        return [_plan_out(s, p, owner, cls, now) for p, owner, cls in rows]


def list_jobs(db: Database, plan_id: int, states: Collection[JobState] | None = None
              ) -> list[JobOut]:
    q = (select(JobRow, WorkerRow.name).outerjoin(WorkerRow, WorkerRow.id == JobRow.worker_id)
         .where(JobRow.plan_id == plan_id).order_by(JobRow.seq))
    if states:
        q = q.where(JobRow.state.in_([st.value for st in states]))
    with db.read() as s:
        _load_plan(s, plan_id)
        return [job_out(j, w) for j, w in s.execute(q)]


def get_job(db: Database, job_id: int) -> JobOut:
    with db.read() as s:
        row = s.execute(select(JobRow, WorkerRow.name)
                        .outerjoin(WorkerRow, WorkerRow.id == JobRow.worker_id)
                        .where(JobRow.id == job_id)).first()
        if row is None:
            raise NotFound(f"no job {job_id}")
        return job_out(row[0], row[1])


def job_out(j: JobRow, worker: str | None) -> JobOut:
    return JobOut(
        id=j.id, plan_id=j.plan_id, seq=j.seq, cell=Cell.model_validate(j.cell),
        state=JobState(j.state), outcome=Verdict(j.outcome) if j.outcome else None,
        reasons=list(j.reasons or []), attempt=j.attempt, worker=worker,
        submitted_at=ts(j.submitted_at),
        assigned_at=ts(j.assigned_at), started_at=ts(j.started_at),
        finished_at=ts(j.finished_at), duration_s=j.duration_s)


def update_priority(db: Database, plan_id: int, priority: int) -> None:
    with db.write() as s:
        row = _load_plan(s, plan_id, lock=not db.is_sqlite)
        state = PlanState(row.state)
        if state.terminal:
            raise Conflict(f"plan {plan_id} is {state.value}; changing its priority needs "
                           "it to be queued or running")
        row.priority = priority
        s.execute(update(JobRow).where(JobRow.plan_id == plan_id,
                                       JobRow.state == JobState.QUEUED.value)
                  .values(priority=priority))


def cancel_plan(db: Database, plan_id: int, now: float) -> int:
    """Cancel queued jobs at once; running ones finish. Returns how many were cancelled."""
    with db.write() as s:
        return cancel_in_session(s, _load_plan(s, plan_id, lock=not db.is_sqlite), now)


def cancel_in_session(s: Session, row: PlanRow, now: float) -> int:
    """``cancel_plan`` inside the caller's write transaction."""
    require_plan_transition(f"plan {row.id}", PlanState(row.state), PlanState.CANCELLED)
    require_job_transition("a queued job", JobState.QUEUED, JobState.CANCELLED)
    queued = s.scalars(select(JobRow.id).where(
        JobRow.plan_id == row.id, JobRow.state == JobState.QUEUED.value)).all()
    s.execute(update(JobRow).where(JobRow.id.in_(queued))
              .values(state=JobState.CANCELLED.value, finished_at=now))
    row.state = PlanState.CANCELLED.value
    row.cancel_requested = True
    if not has_unfinished(s, row.id):
        row.completed_at = now
    return len(queued)


def has_unfinished(s: Session, plan_id: int) -> bool:
    """Whether any job of the plan is not final: an index probe per unfinished state
    (``IN`` on the few live states, not ``NOT IN`` the final ones, which would walk every
    finished job of a big plan)."""
    return s.scalar(select(JobRow.id).where(
        JobRow.plan_id == plan_id, JobRow.state.in_(_UNFINISHED)).limit(1)) is not None


def close_plan_if_done(s: Session, plan_id: int, now: float) -> None:
    """Called in the transaction that ended a job of the plan (plan row locked on PG)."""
    if has_unfinished(s, plan_id):
        return
    row = s.get(PlanRow, plan_id)
    assert row is not None
    if row.completed_at is None:
        row.completed_at = now
    if row.state in (PlanState.QUEUED, PlanState.RUNNING):
        require_plan_transition(f"plan {plan_id}", PlanState(row.state), PlanState.COMPLETED)
        row.state = PlanState.COMPLETED.value
