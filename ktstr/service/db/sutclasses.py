"""SUT classes in the database: synced from sutclasses.yaml, listed with their usage."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update

from ktstr.service.db.engine import Database
from ktstr.service.db.tables import JobRow, LeaseRow, SutClassRow, SutRow
from ktstr.service.schemas import SutClassOut, ts
from ktstr.service.states import JobState
from ktstr.service.sutclasses import AnySutClass
from ktstr.service.usage import busy_share

_ACTIVE = (JobState.ASSIGNED.value, JobState.RUNNING.value)


def sync_sutclasses(db: Database, classes: Sequence[AnySutClass], now: float) -> None:
    """Make the tables match the file: new classes and SUTs are added, classes missing
    from the file are disabled, SUTs missing from it are marked absent (history stays)."""
    with db.write() as s:
        existing = {c.name: c for c in s.scalars(select(SutClassRow))}
        wanted = {c.sutclass for c in classes}
        for name, old in existing.items():
            if name not in wanted:
                old.enabled = False
        s.execute(update(SutRow).values(present=False))
        suts = {r.name: r for r in s.scalars(select(SutRow))}
        for c in classes:
            found = existing.get(c.sutclass)
            if found is None:
                row: SutClassRow = SutClassRow(name=c.sutclass, enabled=c.enabled, created_at=now)
                s.add(row)
                s.flush()
            else:
                row = found
            row.enabled = c.enabled
            for sut in c.suts:
                conn = sut.connection.model_dump(mode="json")
                srow = suts.get(sut.name)
                if srow is None:
                    s.add(SutRow(sutclass_id=row.id, name=sut.name, connection=conn,
                                 present=True, created_at=now))
                else:
                    srow.sutclass_id, srow.connection, srow.present = row.id, conn, True


def list_sutclasses(db: Database, now: float, start: float | None, end: float | None
                    ) -> list[SutClassOut]:
    out: list[SutClassOut] = []
    with db.read() as s:
        for c in s.scalars(select(SutClassRow).order_by(SutClassRow.id)):
            total = s.scalar(select(func.count()).select_from(SutRow).where(
                SutRow.sutclass_id == c.id, SutRow.present)) or 0
            in_use = s.scalar(select(func.count()).select_from(JobRow).where(
                JobRow.sutclass_id == c.id, JobRow.state.in_(_ACTIVE))) or 0
            usage = None
            if start is not None or end is not None:
                lo = start if start is not None else c.created_at
                hi = end if end is not None else now
                rows = s.execute(select(JobRow.assigned_at, JobRow.finished_at).where(
                    JobRow.sutclass_id == c.id, JobRow.assigned_at.is_not(None),
                    JobRow.assigned_at < hi,
                    (JobRow.finished_at.is_(None)) | (JobRow.finished_at > lo)))
                intervals = [(float(a or 0.0), b) for a, b in rows]
                leases = s.execute(select(LeaseRow.acquired_at, LeaseRow.ended_at).where(
                    LeaseRow.sutclass_id == c.id, LeaseRow.acquired_at.is_not(None),
                    LeaseRow.acquired_at < hi,
                    (LeaseRow.ended_at.is_(None)) | (LeaseRow.ended_at > lo)))
                intervals += [(float(a or 0.0), b) for a, b in leases]
                usage = busy_share(intervals, total, lo, hi, now)
            out.append(SutClassOut(
                id=c.id, name=c.name, enabled=c.enabled, suts_total=total,
                suts_in_use=in_use, usage=usage, window_from=ts(start), window_to=ts(end),
                created_at=ts(c.created_at)))
    return out


def sutclass_ids(db: Database) -> dict[str, int]:
    with db.read() as s:
        rows = s.execute(select(SutClassRow.name, SutClassRow.id).where(SutClassRow.enabled))
        return {row[0]: row[1] for row in rows}


def sut_count(db: Database, sutclass_id: int) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(SutRow).where(
            SutRow.sutclass_id == sutclass_id, SutRow.present)) or 0
