"""Files uploaded with plans, and what a resubmitted plan copies from its original."""

from __future__ import annotations

from sqlalchemy import or_, select

from ktstr.contract import Cell
from ktstr.results.model import Verdict
from ktstr.service.db.engine import Database
from ktstr.service.db.tables import JobRow, PlanFileRow, PlanRow, SutClassRow
from ktstr.service.errors import Conflict, NotFound
from ktstr.service.plan import Plan
from ktstr.service.schemas import PlanFileOut
from ktstr.service.states import JobState

#: jobs ``plan-resubmit --failed-only`` runs again
_FAILED_STATES = (JobState.FAILED.value, JobState.TIMED_OUT.value)
_FAILED_OUTCOMES = (Verdict.FAIL.value, Verdict.ERROR.value)


def plan_files(db: Database, plan_id: int) -> list[PlanFileOut]:
    with db.read() as s:
        if s.get(PlanRow, plan_id) is None:
            raise NotFound(f"no plan {plan_id}")
        rows = s.scalars(select(PlanFileRow).where(PlanFileRow.plan_id == plan_id)
                         .order_by(PlanFileRow.name)).all()
        return [PlanFileOut(name=r.name, sha256=r.sha256, size=r.size) for r in rows]


def file_known(db: Database, sha256: str) -> bool:
    with db.read() as s:
        return s.scalar(select(PlanFileRow.id).where(PlanFileRow.sha256 == sha256)
                        .limit(1)) is not None


class Resubmission:
    """What a new plan copies from an old one: its document, SUT class, priority,
    publish flag, files and the cells to run again."""

    def __init__(self, plan: Plan, sutclass: str, sutclass_id: int, priority: int,
                 publish: bool, cells: list[Cell], files: list[tuple[str, str, int]]) -> None:
        self.plan, self.sutclass, self.sutclass_id = plan, sutclass, sutclass_id
        self.priority, self.publish, self.cells, self.files = priority, publish, cells, files


def resubmission(db: Database, plan_id: int, failed_only: bool) -> Resubmission:
    """The old plan's cells (only the failed, timed-out, fail or error ones with
    ``failed_only``), in their original order."""
    with db.read() as s:
        row = s.get(PlanRow, plan_id)
        if row is None:
            raise NotFound(f"no plan {plan_id}")
        cls = s.get(SutClassRow, row.sutclass_id)
        assert cls is not None
        q = select(JobRow.cell).where(JobRow.plan_id == plan_id).order_by(JobRow.seq)
        if failed_only:
            q = q.where(or_(JobRow.state.in_(_FAILED_STATES),
                            JobRow.outcome.in_(_FAILED_OUTCOMES)))
        cells = [Cell.model_validate(c) for c in s.scalars(q)]
        files = [(f.name, f.sha256, f.size) for f in s.scalars(
            select(PlanFileRow).where(PlanFileRow.plan_id == plan_id))]
        if not cells:
            what = "failed jobs" if failed_only else "jobs"
            raise Conflict(f"plan {plan_id} has no {what} to resubmit")
        return Resubmission(Plan.model_validate(row.document), cls.name, cls.id,
                            row.priority, row.publish, cells, files)
