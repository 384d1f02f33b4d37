"""The dashboard's plan and job pages: what they show of published results.

A plan's page lists its jobs with the verdict each published (``--resultstore``) and the
matrix of its cells by verdict; a job's page shows its run's verdict, reasons, timeline,
logs and debug dump with the views of ``ktstr report`` (``ktstr.results.views``). A job
whose result is not in the store (its plan was submitted with ``--no-publish``, the
service has no store, or the job has not ended) shows the service's own record of it,
and the page says so. ``plan_page``/``job_page`` are pure; ``load_*`` read the service's
database, the store and the kept console log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from ktstr.contract import Cell
from ktstr.declare.base import Frozen
from ktstr.errors import InfraError
from ktstr.results.model import RunResult
from ktstr.results.views import (
    NO_VERDICT,
    LogBlock,
    MatrixEntry,
    RunDetail,
    VerdictMatrix,
    log_block,
    run_detail,
    verdict_css,
    verdict_matrix,
)
from ktstr.service.context import ServiceContext
from ktstr.service.db.jobs import job_log
from ktstr.service.db.plans import PlanFilter, get_job, list_jobs, list_plans
from ktstr.service.publish import job_record, result_store
from ktstr.service.resultstore import ResultQuery, ResultRecord
from ktstr.service.schemas import JobOut, PlanOut

log = logging.getLogger(__name__)


def row_label(cell: Cell) -> str:
    """A cell's row in the matrix: its scheduler (and test)."""
    return cell.scheduler + (f" · {cell.test}" if cell.test else "")


def column_label(cell: Cell) -> str:
    """A cell's column in the matrix: kernel · topology (its preset name if it has one)."""
    return f"{cell.kernel} · {cell.preset or cell.topology}"


class PlanJob(Frozen):
    """One row of a plan's page."""

    id: int
    row: str
    column: str
    state: str
    verdict: str = Field(description="the verdict, or the job's state without one")
    css: str
    reasons: list[str]
    attempt: int
    worker: str | None
    duration_s: float | None
    published: bool


class PlanPage(Frozen):
    plan: PlanOut
    jobs: list[PlanJob]
    matrix: VerdictMatrix
    published: int
    has_store: bool
    #: why the result store could not be read (the page then shows the service's record)
    store_error: str = ""


def job_href(job_id: int) -> str:
    return f"/dashboard/jobs/{job_id}"


def plan_page(plan: PlanOut, jobs: Sequence[JobOut],
              published: Mapping[int, ResultRecord], *, has_store: bool,
              store_error: str = "") -> PlanPage:
    """A plan's jobs, each with its published verdict if there is one, else the
    service's, and the matrix of its cells by verdict (pure)."""
    lines: list[PlanJob] = []
    for j in jobs:
        rec = published.get(j.id)
        outcome = rec.outcome if rec is not None else j.outcome
        reasons = rec.reasons if rec is not None else j.reasons
        lines.append(PlanJob(
            id=j.id, row=row_label(j.cell), column=column_label(j.cell),
            state=j.state.value, verdict=outcome.value if outcome else j.state.value,
            css=verdict_css(outcome.value) if outcome else NO_VERDICT,
            reasons=list(reasons), attempt=j.attempt, worker=j.worker,
            duration_s=j.duration_s, published=rec is not None))
    matrix = verdict_matrix(
        [MatrixEntry(row=ln.row, column=ln.column, label=ln.verdict, css=ln.css,
                     href=job_href(ln.id),
                     title=f"job {ln.id}" + (": " + "; ".join(ln.reasons)
                                             if ln.reasons else ""))
         for ln in lines],
        title=f"Plan {plan.id}: cells by verdict", row_label="scheduler",
        column_label="kernel · topology")
    return PlanPage(plan=plan, jobs=lines, matrix=matrix,
                    published=sum(ln.published for ln in lines), has_store=has_store,
                    store_error=store_error)


class JobPage(Frozen):
    job: JobOut
    #: where the result shown comes from: "result store", "service" or "" (none yet)
    source: str
    detail: RunDetail | None
    #: the result as JSON when it is not a ``ktstr run`` report (a verifier cell)
    raw: str = ""
    log: LogBlock | None = None
    store_error: str = ""


def job_page(job: JobOut, record: ResultRecord | None, *, published: bool,
             log_text: str, store_error: str = "") -> JobPage:
    """A job's run as ``ktstr report`` shows one, with the job's console log (pure)."""
    # its first line is the command the worker ran (KtstrRunner), kept however long
    kept = log_block("job-log", "Job log (the worker's console)", log_text, head_lines=1) \
        if log_text.strip() else None
    report: Any = record.details.get("report") if record is not None else None
    detail: RunDetail | None = None
    raw = ""
    if isinstance(report, dict):
        try:
            detail = run_detail(RunResult.model_validate(report))
        except ValidationError:
            raw = json.dumps(report, indent=2, sort_keys=True, default=str)
    elif record is not None and record.details:
        raw = json.dumps(record.details, indent=2, sort_keys=True, default=str)
    source = "" if record is None else "result store" if published else "service"
    return JobPage(job=job, source=source, detail=detail, raw=raw, log=kept,
                   store_error=store_error)


# ---- loading -------------------------------------------------------------------------

def _published(ctx: ServiceContext, q: ResultQuery) -> tuple[list[ResultRecord], str]:
    """The store's records for ``q`` and, if it cannot be read, why (logged; a page then
    shows the service's own records rather than failing)."""
    try:
        store = result_store(ctx)
        return (store.query(q) if store is not None else []), ""
    except (InfraError, SQLAlchemyError) as exc:
        log.warning("cannot read the result store: %s", exc, extra={"action": "dashboard"})
        return [], f"the result store cannot be read: {exc}"


def load_plan_page(ctx: ServiceContext, plan_id: int) -> PlanPage:
    """Raises ``NotFound`` for an unknown plan."""
    plan = list_plans(ctx.db, PlanFilter(plan_id=plan_id), ctx.clock())[0]
    jobs = list_jobs(ctx.db, plan_id)
    latest: dict[int, ResultRecord] = {}
    records, error = _published(ctx, ResultQuery(plan_id=plan_id, limit=100_000))
    for rec in records:
        if rec.job_id not in latest or rec.attempt > latest[rec.job_id].attempt:
            latest[rec.job_id] = rec
    return plan_page(plan, jobs, latest, has_store=ctx.settings.resultstore is not None,
                     store_error=error)


def _read(path: str | None) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def load_job_page(ctx: ServiceContext, job_id: int) -> JobPage:
    """Raises ``NotFound`` for an unknown job."""
    job = get_job(ctx.db, job_id)
    records, error = _published(ctx, ResultQuery(job_id=job_id, plan_id=job.plan_id))
    record = max(records, key=lambda r: r.attempt, default=None)
    published = record is not None
    if record is None and job.state.terminal:
        record = job_record(ctx.db, job_id)[0]
    _owner, log_path = job_log(ctx.db, job_id)
    return job_page(job, record, published=published, log_text=_read(log_path),
                    store_error=error)
