"""Worker rows: register (with the version handshake), heartbeat, listing."""

from __future__ import annotations

from sqlalchemy import select

from ktstr import __version__
from ktstr.service.auth import Principal
from ktstr.service.db.engine import Database
from ktstr.service.db.jobs import move_worker, requeue_or_fail, worker_for
from ktstr.service.db.leases import allocate_class
from ktstr.service.db.tables import JobRow, SutClassRow, SutRow, User, WorkerRow
from ktstr.service.errors import Conflict, NotFound
from ktstr.service.schemas import (
    Heartbeat,
    HeartbeatReply,
    WorkerGoodbye,
    WorkerOut,
    WorkerRegister,
    WorkerSession,
    ts,
)
from ktstr.service.settings import PROTOCOL_VERSION, Settings
from ktstr.service.states import WORKER_INITIAL, JobState, WorkerState

_ACTIVE = (JobState.ASSIGNED.value, JobState.RUNNING.value)


def register(db: Database, who: Principal, req: WorkerRegister, settings: Settings,
             now: float) -> WorkerSession:
    if req.protocol != PROTOCOL_VERSION:
        raise Conflict(f"worker protocol {req.protocol} (ktstr {req.version}) does not match "
                       f"the service's protocol {PROTOCOL_VERSION} (ktstr {__version__}); "
                       "run the same ktstr version on both")
    with db.write() as s:
        found = s.execute(
            select(SutRow, SutClassRow).join(SutClassRow, SutClassRow.id == SutRow.sutclass_id)
            .where(SutRow.name == req.name, SutRow.present)).first()
        if found is None or found[1].name != req.sutclass:
            names = s.scalars(select(SutRow.name).join(
                SutClassRow, SutClassRow.id == SutRow.sutclass_id).where(
                SutClassRow.name == req.sutclass, SutRow.present)).all()
            if not names:
                raise NotFound(f"unknown SUT class {req.sutclass!r}")
            raise NotFound(f"SUT class {req.sutclass!r} has no SUT {req.name!r}; its SUTs: "
                           + ", ".join(sorted(names)))
        sut, cls = found
        if not cls.enabled:
            raise Conflict(f"SUT class {cls.name!r} is disabled")
        w = s.scalar(select(WorkerRow).where(WorkerRow.name == req.name))
        if w is None:
            w = WorkerRow(name=req.name, sut_id=sut.id, owner_id=who.id, session=0,
                          registered_at=now, last_heartbeat=now,
                          state=WORKER_INITIAL.value, version=req.version)
            s.add(w)
            s.flush()
        else:
            who.require_owner(w.owner_id, f"worker {req.name!r}")
        w.session += 1
        move_worker(w, WorkerState.ONLINE)
        w.version = req.version
        w.registered_at = w.last_heartbeat = now
        # whatever a previous run of this worker still held is lost with it
        held = s.scalars(select(JobRow).where(JobRow.worker_id == w.id,
                                              JobRow.state.in_(_ACTIVE))).all()
        requeued = [j.id for j in held]
        for j in held:
            requeue_or_fail(s, j, f"worker {w.name} restarted", settings, now)
        return WorkerSession(
            name=w.name, sutclass=cls.name, session=w.session,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            timeout_slack_s=settings.timeout_slack_s, protocol=PROTOCOL_VERSION,
            server_version=__version__, requeued_jobs=requeued)


def heartbeat(db: Database, who: Principal, name: str, hb: Heartbeat, now: float
              ) -> HeartbeatReply:
    with db.write() as s:
        w = worker_for(s, name, who)
        if hb.session != w.session:
            raise Conflict(f"worker {name!r} session {hb.session} was replaced by session "
                           f"{w.session}; register again")
        w.last_heartbeat = now
        if w.state != WorkerState.ONLINE.value:
            move_worker(w, WorkerState.ONLINE)
        if hb.job_id is None:
            return HeartbeatReply(abort=False)
        job = s.get(JobRow, hb.job_id)
        if job is None or job.worker_id != w.id or job.attempt != hb.attempt:
            return HeartbeatReply(abort=True, reason="the job was given to another worker")
        if not JobState(job.state).active:
            return HeartbeatReply(abort=True, reason=f"the job is {job.state}")
        return HeartbeatReply(abort=False)


def goodbye(db: Database, who: Principal, name: str, req: WorkerGoodbye, settings: Settings,
            now: float) -> tuple[WorkerOut, list[int], list[int]]:
    """A clean stop: the worker goes ``offline``; a job it still held is requeued and
    its SUT may go to a queued lease. Returns (the worker, requeued jobs, granted
    leases)."""
    with db.write() as s:
        w = worker_for(s, name, who)
        if req.session != w.session:
            raise Conflict(f"worker {name!r} session {req.session} was replaced by session "
                           f"{w.session}; nothing to stop")
        move_worker(w, WorkerState.OFFLINE)
        held = s.scalars(select(JobRow).where(JobRow.worker_id == w.id,
                                              JobRow.state.in_(_ACTIVE))).all()
        requeued = [j.id for j in held]
        for j in held:
            requeue_or_fail(s, j, f"worker {w.name} stopped", settings, now)
        cls = s.scalar(select(SutRow.sutclass_id).where(SutRow.id == w.sut_id))
        granted = allocate_class(s, cls, settings, now) if cls is not None else []
    return next(x for x in list_workers(db) if x.name == name), requeued, granted


def list_workers(db: Database) -> list[WorkerOut]:
    with db.read() as s:
        rows = s.execute(
            select(WorkerRow, SutClassRow.name, User.name)
            .join(SutRow, SutRow.id == WorkerRow.sut_id)
            .join(SutClassRow, SutClassRow.id == SutRow.sutclass_id)
            .join(User, User.id == WorkerRow.owner_id).order_by(WorkerRow.name)).all()
        held = {row[0]: row[1] for row in s.execute(select(JobRow.worker_id, JobRow.id).where(
            JobRow.state.in_(_ACTIVE)))}
        return [WorkerOut(name=w.name, sutclass=cls, owner=owner,
                          state=WorkerState(w.state), version=w.version,
                          registered_at=ts(w.registered_at),
                          last_heartbeat=ts(w.last_heartbeat),
                          job_id=held.get(w.id))
                for w, cls, owner in rows]


def sutclass_of(db: Database, name: str) -> int:
    """The SUT class id a registered worker claims for."""
    with db.read() as s:
        cls = s.scalar(select(SutRow.sutclass_id).join(WorkerRow, WorkerRow.sut_id == SutRow.id)
                       .where(WorkerRow.name == name))
    if cls is None:
        raise NotFound(f"no worker {name!r}: register it first (ktstr sched worker)")
    return cls
