"""Lease queries: acquire, list, renew, release, and the allocation/expiry sweep.

Every change runs in one write transaction, so a SUT is never given to a lease and a
job at once: claims (``db.claims.claim``) see acquired leases, and allocation sees held jobs.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ktstr.declare.base import Frozen
from ktstr.service.auth import Principal
from ktstr.service.db.engine import Database
from ktstr.service.db.tables import JobRow, LeaseRow, SutClassRow, SutRow, User, WorkerRow
from ktstr.service.errors import Conflict, NotFound
from ktstr.service.leases import FreeSut, Kind, LeaseOut, Waiting, allocate
from ktstr.service.schemas import ts
from ktstr.service.settings import Settings
from ktstr.service.states import JobState, LeaseState, WorkerState, require_lease_transition

_ACTIVE_JOBS = (JobState.ASSIGNED.value, JobState.RUNNING.value)


class LeaseFilter(Frozen):
    lease_id: int | None = None
    owners: list[int] | None = None  # None: every user
    states: list[LeaseState] | None = None  # None: every state


class LeaseSweep(Frozen):
    acquired: list[int] = []
    expired: list[int] = []
    cancelled: list[int] = []
    freed_classes: list[int] = []


def _move(lease: LeaseRow, to: LeaseState) -> None:
    require_lease_transition(f"lease {lease.id}", LeaseState(lease.state), to)
    lease.state = to.value


def leased_sut_ids(s: Session, sutclass_id: int | None = None) -> set[int]:
    q = select(LeaseRow.sut_id).where(LeaseRow.state == LeaseState.ACQUIRED.value)
    if sutclass_id is not None:
        q = q.where(LeaseRow.sutclass_id == sutclass_id)
    return {i for i in s.scalars(q) if i is not None}


def busy_sut_ids(s: Session, sutclass_id: int) -> set[int]:
    """SUTs of the class running a job or held by a lease."""
    jobs = s.scalars(select(WorkerRow.sut_id).join(JobRow, JobRow.worker_id == WorkerRow.id)
                     .where(JobRow.sutclass_id == sutclass_id,
                            JobRow.state.in_(_ACTIVE_JOBS)))
    return set(jobs) | leased_sut_ids(s, sutclass_id)


def waiting(s: Session, sutclass_id: int, limit: int) -> list[Waiting]:
    """The first ``limit`` queued leases and the first ``limit`` queued jobs of a class."""
    leases = s.execute(select(LeaseRow.id, LeaseRow.priority, LeaseRow.requested_at).where(
        LeaseRow.sutclass_id == sutclass_id, LeaseRow.state == LeaseState.QUEUED.value)
        .order_by(LeaseRow.priority.desc(), LeaseRow.requested_at, LeaseRow.id).limit(limit))
    jobs = s.execute(select(JobRow.id, JobRow.priority, JobRow.submitted_at).where(
        JobRow.sutclass_id == sutclass_id, JobRow.state == JobState.QUEUED.value)
        .order_by(JobRow.priority.desc(), JobRow.submitted_at, JobRow.id).limit(limit))
    return ([Waiting(kind=Kind.LEASE, id=i, priority=p, since=t) for i, p, t in leases]
            + [Waiting(kind=Kind.JOB, id=i, priority=p, since=t) for i, p, t in jobs])


def acquire_on(s: Session, lease_id: int, sut_id: int, settings: Settings,
               now: float) -> bool:
    """Give the SUT to the queued lease; False if another transaction granted or ended
    the lease meanwhile (PostgreSQL: a claim and the reaper's sweep may both find it
    first in line; the row lock makes one of them see it already acquired)."""
    q = select(LeaseRow).where(LeaseRow.id == lease_id).execution_options(
        populate_existing=True)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    lease = s.scalar(q)
    if lease is None or lease.state != LeaseState.QUEUED.value:
        return False
    _move(lease, LeaseState.ACQUIRED)
    lease.sut_id, lease.acquired_at = sut_id, now
    lease.expires_at = now + settings.lease_max_s
    return True


def allocate_class(s: Session, sutclass_id: int, settings: Settings, now: float) -> list[int]:
    """Give free SUTs of the class to the queued leases whose turn it is; returns the
    leases granted."""
    busy = busy_sut_ids(s, sutclass_id)
    served = set(s.scalars(select(WorkerRow.sut_id).where(
        WorkerRow.state == WorkerState.ONLINE.value)))
    free = [FreeSut(id=i, runs_jobs=i in served) for i in s.scalars(select(SutRow.id).where(
        SutRow.sutclass_id == sutclass_id, SutRow.present).order_by(SutRow.name))
        if i not in busy]
    if not free:
        return []
    grants = allocate(free, waiting(s, sutclass_id, len(free)))
    return [lease_id for lease_id, sut_id in grants.items()
            if acquire_on(s, lease_id, sut_id, settings, now)]


def sweep(s: Session, settings: Settings, now: float) -> LeaseSweep:
    """Expire overdue leases (their SUTs return to the pool), cancel queued leases whose
    waiting client stopped polling, then allocate."""
    expired: list[int] = []
    cancelled: list[int] = []
    freed: set[int] = set()
    for lease in s.scalars(select(LeaseRow).where(
            LeaseRow.state == LeaseState.QUEUED.value, LeaseRow.watched_until < now)).all():
        _move(lease, LeaseState.CANCELLED)
        lease.ended_at = now
        lease.reason = ("its client stopped waiting for it (lease-acquire --wait "
                        "interrupted or gone)")
        cancelled.append(lease.id)
    for lease in s.scalars(select(LeaseRow).where(
            LeaseRow.state == LeaseState.ACQUIRED.value, LeaseRow.expires_at < now)).all():
        _move(lease, LeaseState.EXPIRED)
        lease.ended_at = now
        lease.reason = "not renewed before it expired"
        expired.append(lease.id)
        freed.add(lease.sutclass_id)
    acquired: list[int] = []
    classes = s.scalars(select(LeaseRow.sutclass_id).where(
        LeaseRow.state == LeaseState.QUEUED.value).distinct()).all()
    for cls in classes:
        acquired += allocate_class(s, cls, settings, now)
    return LeaseSweep(acquired=acquired, expired=expired, cancelled=cancelled,
                      freed_classes=sorted(freed))


def request(db: Database, who: Principal, sutclass: str, priority: int, settings: Settings,
            now: float) -> tuple[int, int]:
    """Queue a lease and try to allocate at once; (lease id, SUT class id). Only this
    lease can be granted here (nothing else changed), so nobody else needs waking."""
    with db.write() as s:
        cls = s.scalar(select(SutClassRow).where(SutClassRow.name == sutclass))
        if cls is None or not cls.enabled:
            known = s.scalars(select(SutClassRow.name).where(SutClassRow.enabled)
                              .order_by(SutClassRow.name)).all()
            raise NotFound(f"unknown SUT class {sutclass!r}; known: {', '.join(known)}")
        lease = LeaseRow(owner_id=who.id, sutclass_id=cls.id, state=LeaseState.QUEUED.value,
                         priority=priority, requested_at=now)
        s.add(lease)
        s.flush()
        allocate_class(s, cls.id, settings, now)
        return lease.id, cls.id


def _load(s: Session, lease_id: int, who: Principal | None) -> LeaseRow:
    lease = s.get(LeaseRow, lease_id)
    if lease is None:
        raise NotFound(f"no lease {lease_id}")
    if who is not None:
        who.require_owner(lease.owner_id, f"lease {lease_id}")
    return lease


def release(db: Database, who: Principal, lease_id: int, settings: Settings,
            now: float) -> tuple[int, list[int]]:
    """Release (acquired) or cancel (queued) a lease; returns its SUT class id and the
    queued leases granted the freed SUT."""
    with db.write() as s:
        lease = _load(s, lease_id, who)
        state = LeaseState(lease.state)
        if state.terminal:
            raise Conflict(f"lease {lease_id} is {state.value}; releasing it needs it to be "
                           "one of: acquired, queued")
        to = LeaseState.CANCELLED if state is LeaseState.QUEUED else LeaseState.RELEASED
        _move(lease, to)
        lease.ended_at, lease.reason = now, f"released by {who.name}"
        return lease.sutclass_id, allocate_class(s, lease.sutclass_id, settings, now)


def watch(db: Database, lease_id: int, until: float) -> None:
    """A client waits on the queued lease until ``until`` (its long-poll plus grace);
    the sweep cancels the lease once that passes with no newer poll."""
    with db.write() as s:
        s.execute(update(LeaseRow).where(LeaseRow.id == lease_id,
                                         LeaseRow.state == LeaseState.QUEUED.value)
                  .values(watched_until=until))


def renew(db: Database, who: Principal, lease_id: int, settings: Settings,
          now: float) -> None:
    with db.write() as s:
        lease = _load(s, lease_id, who)
        if lease.state != LeaseState.ACQUIRED.value:
            raise Conflict(f"lease {lease_id} is {lease.state}; renewing it needs it to be "
                           "acquired")
        lease.expires_at = now + settings.lease_max_s


def cancel_user_leases(s: Session, user_id: int, reason: str, settings: Settings,
                       now: float) -> tuple[list[int], list[int], list[int]]:
    """End a user's live leases (queued: cancelled, acquired: released) in the caller's
    transaction. Returns (ended leases, leases granted the freed SUTs, their classes)."""
    ended: list[int] = []
    classes: set[int] = set()
    for lease in s.scalars(select(LeaseRow).where(
            LeaseRow.owner_id == user_id, LeaseRow.state.in_(
                [LeaseState.QUEUED.value, LeaseState.ACQUIRED.value]))).all():
        state = LeaseState(lease.state)
        _move(lease, LeaseState.CANCELLED if state is LeaseState.QUEUED
              else LeaseState.RELEASED)
        lease.ended_at, lease.reason = now, reason
        ended.append(lease.id)
        classes.add(lease.sutclass_id)
    granted: list[int] = []
    for cls in sorted(classes):
        granted += allocate_class(s, cls, settings, now)
    return ended, granted, sorted(classes)


def owner_of(db: Database, lease_id: int) -> int:
    with db.read() as s:
        return _load(s, lease_id, None).owner_id


def list_leases(db: Database, flt: LeaseFilter) -> list[LeaseOut]:
    q = (select(LeaseRow, User.name, SutClassRow.name, SutRow.name, SutRow.connection)
         .join(User, User.id == LeaseRow.owner_id)
         .join(SutClassRow, SutClassRow.id == LeaseRow.sutclass_id)
         .outerjoin(SutRow, SutRow.id == LeaseRow.sut_id).order_by(LeaseRow.id))
    if flt.lease_id is not None:
        q = q.where(LeaseRow.id == flt.lease_id)
    if flt.owners is not None:
        q = q.where(LeaseRow.owner_id.in_(flt.owners))
    if flt.states is not None:
        q = q.where(LeaseRow.state.in_([st.value for st in flt.states]))
    with db.read() as s:
        return [LeaseOut(id=r.id, owner=owner, sutclass=cls, state=LeaseState(r.state),
                         priority=r.priority, sut=sut, connection=conn,
                         requested_at=ts(r.requested_at), acquired_at=ts(r.acquired_at),
                         expires_at=ts(r.expires_at), ended_at=ts(r.ended_at),
                         reason=r.reason)
                for r, owner, cls, sut, conn in s.execute(q)]


def lease_states(db: Database, ids: Collection[int]) -> dict[int, LeaseState]:
    with db.read() as s:
        return {i: LeaseState(st) for i, st in s.execute(
            select(LeaseRow.id, LeaseRow.state).where(LeaseRow.id.in_(list(ids))))}
