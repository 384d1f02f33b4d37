"""When a job ends: keep its result JSON and console log under ``--storage`` and, unless
its plan was submitted with ``--no-publish``, publish it to the ``--resultstore``."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select

from ktstr.contract import Cell
from ktstr.results.model import Verdict
from ktstr.service.context import ServiceContext
from ktstr.service.db.engine import Database
from ktstr.service.db.reports import Finished, RecordFacts
from ktstr.service.db.tables import JobRow, PlanRow, SutClassRow, User, WorkerRow
from ktstr.service.resultstore import ResultRecord, ResultStore
from ktstr.service.schemas import JobResultIn, ts
from ktstr.service.states import JobState
from ktstr.service.storage import keep_job_result

log = logging.getLogger(__name__)


def job_record(db: Database, job_id: int) -> tuple[ResultRecord, bool, str | None]:
    """(the job's result record, whether its plan publishes, its log path). Core
    columns, not ORM entities: this runs for every result a worker reports."""
    with db.read() as s:
        row = s.execute(
            select(JobRow.plan_id, JobRow.attempt, JobRow.cell, JobRow.state,
                   JobRow.outcome, JobRow.reasons, JobRow.duration_s, JobRow.finished_at,
                   JobRow.result, JobRow.log_path, PlanRow.publish, User.name,
                   SutClassRow.name, WorkerRow.name)
            .join(PlanRow, PlanRow.id == JobRow.plan_id)
            .join(User, User.id == PlanRow.owner_id)
            .join(SutClassRow, SutClassRow.id == PlanRow.sutclass_id)
            .outerjoin(WorkerRow, WorkerRow.id == JobRow.worker_id)
            .where(JobRow.id == job_id)).one()
    (plan_id, attempt, cell_doc, state, outcome, reasons, duration_s, finished_at, result,
     log_path, publish, owner, sutclass, worker) = row
    cell = Cell.model_validate(cell_doc)
    record = ResultRecord(
        plan_id=plan_id, job_id=job_id, attempt=attempt, owner=owner,
        sutclass=sutclass, worker=worker, kind=cell.kind.value, kernel=cell.kernel,
        scheduler=cell.scheduler, topology=cell.topology, test=cell.test,
        state=JobState(state), outcome=Verdict(outcome) if outcome else None,
        reasons=list(reasons or []), duration_s=duration_s,
        finished_at=ts(finished_at), details=dict(result or {}))
    return record, bool(publish), log_path


def result_store(ctx: ServiceContext) -> ResultStore | None:
    """The ``--resultstore``, opened at first use; None without one."""
    if ctx.settings.resultstore is None:
        return None
    with ctx.resultstore_lock:
        if ctx.resultstore is None:
            ctx.resultstore = ResultStore(ctx.settings.resultstore)
        return ctx.resultstore


def reported_record(job_id: int, res: JobResultIn, state: JobState, facts: RecordFacts
                    ) -> ResultRecord:
    """The record of a result the one-statement path just wrote (pure): the same fields
    ``job_record`` would read back. Built without validation (``model_construct``): every
    field comes from a validated report or from the database as the service wrote it,
    and this runs for every result."""
    cell = facts.cell
    return ResultRecord.model_construct(
        id=None, plan_id=facts.plan_id, job_id=job_id, attempt=res.attempt,
        owner=facts.owner, sutclass=facts.sutclass, worker=facts.worker, kind=cell["kind"],
        kernel=cell["kernel"], scheduler=cell["scheduler"], topology=cell["topology"],
        test=cell.get("test"), state=state,
        outcome=None if res.timed_out else (res.outcome or Verdict.ERROR),
        reasons=list(res.reasons), duration_s=res.duration_s,
        finished_at=ts(facts.finished_at), details=dict(res.details))


def keep_and_publish(ctx: ServiceContext, job_id: int,
                     reported: tuple[JobResultIn, Finished] | None = None) -> bool:
    """Keep the ended job's result under storage; publish it if its plan wants that.
    Returns whether it was published. ``reported``: the worker's report and what
    ``finish_result`` returned; with record facts the record is built from them instead
    of read back. A failing result store is logged, not raised: the job's
    result is already safe in the service database and storage."""
    if reported is not None and reported[1].facts is not None:
        res, done = reported
        assert done.facts is not None
        record = reported_record(job_id, res, done.state, done.facts)
        publish, text = done.facts.publish, res.log
    else:
        record, publish, log_path = job_record(ctx.db, job_id)
        text = ""
        if log_path:
            try:
                text = Path(log_path).read_text(errors="replace")
            except OSError:
                text = ""
    finished = record.finished_at.timestamp() if record.finished_at else ctx.clock()
    keep_job_result(ctx.settings.results_dir, finished, record.model_dump_json(), text)
    if not publish:
        return False
    try:
        store = result_store(ctx)
        if store is None:
            return False
        return store.publish(record)
    except Exception:  # the store is optional infrastructure; never fail the report
        log.exception("cannot publish job %s to the result store", job_id,
                      extra={"action": "publish"})
        return False
