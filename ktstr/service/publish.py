"""When a job ends: keep its result JSON and console log under ``--storage`` and, unless
its plan was submitted with ``--no-publish``, publish it to the ``--resultstore``."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select

from ktstr.service.context import ServiceContext
from ktstr.service.db.engine import Database
from ktstr.service.db.tables import JobRow, PlanRow, SutClassRow, User, WorkerRow
from ktstr.service.planner import Cell
from ktstr.service.resultstore import ResultRecord, ResultStore
from ktstr.service.schemas import ts
from ktstr.service.states import JobState, Outcome
from ktstr.service.storage import keep_job_result

log = logging.getLogger(__name__)


def job_record(db: Database, job_id: int) -> tuple[ResultRecord, bool, str | None]:
    """(the job's result record, whether its plan publishes, its log path)."""
    with db.read() as s:
        row = s.execute(
            select(JobRow, PlanRow.publish, User.name, SutClassRow.name, WorkerRow.name)
            .join(PlanRow, PlanRow.id == JobRow.plan_id)
            .join(User, User.id == PlanRow.owner_id)
            .join(SutClassRow, SutClassRow.id == PlanRow.sutclass_id)
            .outerjoin(WorkerRow, WorkerRow.id == JobRow.worker_id)
            .where(JobRow.id == job_id)).one()
    job, publish, owner, sutclass, worker = row
    cell = Cell.model_validate(job.cell)
    record = ResultRecord(
        plan_id=job.plan_id, job_id=job.id, attempt=job.attempt, owner=owner,
        sutclass=sutclass, worker=worker, kind=cell.kind.value, kernel=cell.kernel,
        scheduler=cell.scheduler, topology=cell.topology, test=cell.test,
        state=JobState(job.state), outcome=Outcome(job.outcome) if job.outcome else None,
        reasons=list(job.reasons or []), duration_s=job.duration_s,
        finished_at=ts(job.finished_at), details=dict(job.result or {}))
    return record, bool(publish), job.log_path


def _store(ctx: ServiceContext) -> ResultStore | None:
    if ctx.settings.resultstore is None:
        return None
    if ctx.resultstore is None:
        ctx.resultstore = ResultStore(ctx.settings.resultstore)
    return ctx.resultstore


def keep_and_publish(ctx: ServiceContext, job_id: int) -> bool:
    """Keep the ended job's result under storage; publish it if its plan wants that.
    Returns whether it was published. A failing result store is logged, not raised:
    the job's result is already safe in the service database and storage."""
    record, publish, log_path = job_record(ctx.db, job_id)
    text = ""
    if log_path:
        try:
            text = Path(log_path).read_text(errors="replace")
        except OSError:
            text = ""
    keep_job_result(ctx.settings.results_dir, record.job_id, record.attempt,
                    record.model_dump(mode="json"), text)
    if not publish:
        return False
    try:
        store = _store(ctx)
        if store is None:
            return False
        return store.publish(record)
    except Exception:  # the store is optional infrastructure; never fail the report
        log.exception("cannot publish job %s to the result store", job_id,
                      extra={"action": "publish"})
        return False
