"""What the dashboard shows: running jobs with their progress, and recent failures."""

from __future__ import annotations

from sqlalchemy import or_, select

from ktstr.declare.base import Frozen
from ktstr.results.model import Verdict
from ktstr.service.db.engine import Database
from ktstr.service.db.tables import JobRow, WorkerRow
from ktstr.service.states import JobState


class JobLine(Frozen):
    id: int
    plan_id: int
    cell: str
    state: JobState
    outcome: Verdict | None
    worker: str | None
    elapsed_s: float | None
    progress: float | None  # elapsed / (duration of the scenario), capped at 1
    reasons: list[str]


def _line(j: JobRow, worker: str | None, now: float) -> JobLine:
    started = j.started_at or j.assigned_at
    elapsed = (now - started) if started is not None and j.finished_at is None else \
        j.duration_s
    expected = float(j.cell.get("duration_s") or j.timeout_s or 1.0)
    progress = min(1.0, max(0.0, elapsed / expected)) if elapsed is not None else None
    return JobLine(id=j.id, plan_id=j.plan_id, cell=_key(j), state=JobState(j.state),
                   outcome=Verdict(j.outcome) if j.outcome else None, worker=worker,
                   elapsed_s=elapsed, progress=progress, reasons=list(j.reasons or []))


def _key(j: JobRow) -> str:
    return str(j.cell_key)


def running_jobs(db: Database, now: float, limit: int = 100) -> list[JobLine]:
    q = (select(JobRow, WorkerRow.name).outerjoin(WorkerRow, WorkerRow.id == JobRow.worker_id)
         .where(JobRow.state.in_([JobState.ASSIGNED.value, JobState.RUNNING.value]))
         .order_by(JobRow.id).limit(limit))
    with db.read() as s:
        return [_line(j, w, now) for j, w in s.execute(q)]


def recent_failures(db: Database, now: float, limit: int = 20) -> list[JobLine]:
    q = (select(JobRow, WorkerRow.name).outerjoin(WorkerRow, WorkerRow.id == JobRow.worker_id)
         .where(or_(JobRow.state.in_([JobState.FAILED.value, JobState.TIMED_OUT.value]),
                    JobRow.outcome.in_([Verdict.FAIL.value, Verdict.ERROR.value])))
         .order_by(JobRow.finished_at.desc(), JobRow.id.desc()).limit(limit))
    with db.read() as s:
        return [_line(j, w, now) for j, w in s.execute(q)]


def queued_count(db: Database) -> int:
    from sqlalchemy import func

    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(JobRow).where(
            JobRow.state == JobState.QUEUED.value)) or 0)
