"""Job and lease intervals from the database, for the usage report."""

from __future__ import annotations

from sqlalchemy import or_, select

from ktstr.results.model import Verdict
from ktstr.service.db.engine import Database
from ktstr.service.db.tables import JobRow, LeaseRow, PlanRow, SutClassRow, SutRow, User, WorkerRow
from ktstr.service.states import JobState
from ktstr.service.usage import By, Interval, UsageRow, usage_report

_FAILED_STATES = (JobState.FAILED.value, JobState.TIMED_OUT.value)
_FAILED_OUTCOMES = (Verdict.FAIL.value, Verdict.ERROR.value)


def intervals(db: Database, lo: float, hi: float) -> tuple[list[Interval], dict[str, str]]:
    """Intervals overlapping [lo, hi) and every present SUT's class."""
    with db.read() as s:
        suts: dict[str, str] = {row[0]: row[1] for row in s.execute(
            select(SutRow.name, SutClassRow.name).join(
                SutClassRow, SutClassRow.id == SutRow.sutclass_id).where(SutRow.present))}
        jobs = s.execute(
            select(SutRow.name, SutClassRow.name, User.name, JobRow.assigned_at,
                   JobRow.finished_at, JobRow.state, JobRow.outcome)
            .join(WorkerRow, WorkerRow.id == JobRow.worker_id)
            .join(SutRow, SutRow.id == WorkerRow.sut_id)
            .join(SutClassRow, SutClassRow.id == SutRow.sutclass_id)
            .join(PlanRow, PlanRow.id == JobRow.plan_id)
            .join(User, User.id == PlanRow.owner_id)
            .where(JobRow.assigned_at.is_not(None), JobRow.assigned_at < hi,
                   or_(JobRow.finished_at.is_(None), JobRow.finished_at > lo)))
        out = [Interval(sut=sut, sutclass=cls, user=user, start=float(a or 0.0), end=b,
                        failed=st in _FAILED_STATES or oc in _FAILED_OUTCOMES)
               for sut, cls, user, a, b, st, oc in jobs]
        leases = s.execute(
            select(SutRow.name, SutClassRow.name, User.name, LeaseRow.acquired_at,
                   LeaseRow.ended_at)
            .join(SutRow, SutRow.id == LeaseRow.sut_id)
            .join(SutClassRow, SutClassRow.id == SutRow.sutclass_id)
            .join(User, User.id == LeaseRow.owner_id)
            .where(LeaseRow.acquired_at.is_not(None), LeaseRow.acquired_at < hi,
                   or_(LeaseRow.ended_at.is_(None), LeaseRow.ended_at > lo)))
        out += [Interval(sut=sut, sutclass=cls, user=user, start=float(a or 0.0), end=b,
                         is_job=False) for sut, cls, user, a, b in leases]
    for iv in out:
        suts.setdefault(iv.sut, iv.sutclass)
    return out, suts


def usage(db: Database, by: By, lo: float, hi: float, now: float) -> list[UsageRow]:
    found, suts = intervals(db, lo, hi)
    return usage_report(found, suts, by, lo, hi, now)
