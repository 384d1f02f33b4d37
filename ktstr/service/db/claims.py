"""Claims: a worker asks for work and gets the next queued job of its class.

Claims are the hot path: one short write transaction that picks the next queued job of
the worker's class (highest priority, then oldest) and assigns it. On SQLite the
transaction holds the single write lock (``BEGIN IMMEDIATE``); on PostgreSQL the row is
taken with ``FOR UPDATE SKIP LOCKED`` so concurrent claims never wait on each other.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from sqlalchemy import select, update

from ktstr.contract import Assignment, Cell
from ktstr.declare.base import Frozen
from ktstr.service.auth import Principal
from ktstr.service.db.engine import Database, HotCursor, HotSql
from ktstr.service.db.jobs import (
    ACTIVE,
    WorkerRef,
    batch_rounds,
    json_value,
    move_worker,
    requeue_or_fail,
    sql_in,
)
from ktstr.service.db.leases import acquire_on, leased_sut_ids, waiting
from ktstr.service.db.tables import JobRow, PlanRow, WorkerRow
from ktstr.service.errors import Conflict, NotFound
from ktstr.service.leases import Kind, first_in_line
from ktstr.service.settings import Settings
from ktstr.service.states import (
    JOB_TRANSITIONS,
    PLAN_TRANSITIONS,
    JobState,
    LeaseState,
    PlanState,
    WorkerState,
    require_job_transition,
    sources,
)


class Claimed(Frozen):
    """A claim's answer: the job (None: nothing for this worker now) and the queued
    leases that the claim granted instead (their waiters are woken)."""

    job: Assignment | None = None
    granted_leases: list[int] = []



#: states whose rows the claim may move, from the transition tables
_CLAIMABLE = sql_in(sources(JOB_TRANSITIONS, JobState.ASSIGNED))  # 'queued'
_HELD = sql_in(ACTIVE)
_PLAN_STARTABLE = sql_in(sources(PLAN_TRANSITIONS, PlanState.RUNNING))

#: the claim as one statement. It assigns the next queued job of the class to the worker
#: only in the common case: the session is current, the worker holds no job, and no lease
#: of the class is queued or holds this SUT. Otherwise it changes nothing and the claim
#: takes the general path (``_claim_general``), which sorts those cases out.
_CLAIM_GUARDS = f"""
      AND EXISTS (SELECT 1 FROM workers w WHERE w.id = :wid AND w.session = :session
                  AND w.state = '{WorkerState.ONLINE.value}')
      AND NOT EXISTS (SELECT 1 FROM jobs h WHERE h.worker_id = :wid
                      AND h.state IN ({_HELD}))
      AND NOT EXISTS (SELECT 1 FROM leases l WHERE (l.sutclass_id = :cls AND
                      l.state = '{LeaseState.QUEUED.value}') OR
                      (l.sut_id = :sut AND l.state = '{LeaseState.ACQUIRED.value}'))"""
_CLAIM_SET = f"""state = '{JobState.ASSIGNED.value}', attempt = attempt + 1, worker_id = :wid,
           assigned_at = :now, deadline = :now + timeout_s + :slack"""
_CLAIM_PICK = f"""SELECT id FROM jobs WHERE sutclass_id = :cls AND state IN ({_CLAIMABLE})
        ORDER BY priority DESC, submitted_at, id LIMIT 1"""
_RETURNING = "RETURNING id, plan_id, cell, timeout_s, attempt"
#: PostgreSQL: row lock with SKIP LOCKED, and the plan's queued -> running in the same
#: statement (a data-modifying CTE): one round trip per claim
_CLAIM_PG = HotSql(f"""
WITH claimed AS (
    UPDATE jobs SET {_CLAIM_SET}
    WHERE id = ({_CLAIM_PICK} FOR UPDATE SKIP LOCKED){_CLAIM_GUARDS}
    {_RETURNING}
), started AS (
    UPDATE plans SET state = '{PlanState.RUNNING.value}', started_at = :now
    WHERE id = (SELECT plan_id FROM claimed) AND state IN ({_PLAN_STARTABLE})
)
SELECT id, plan_id, cell, timeout_s, attempt FROM claimed""")
#: SQLite: the single writer (``BEGIN IMMEDIATE``) is the lock; the plan follows in a
#: second statement of the same transaction
_CLAIM_SQLITE = HotSql(f"""
UPDATE jobs SET {_CLAIM_SET}
WHERE id = ({_CLAIM_PICK}){_CLAIM_GUARDS}
{_RETURNING}""")
_PLAN_STARTED = HotSql(f"UPDATE plans SET state = '{PlanState.RUNNING.value}', "
                     f"started_at = :now WHERE id = :plan AND state IN ({_PLAN_STARTABLE})")


def claim(db: Database, who: Principal, worker: WorkerRef, session: int, settings: Settings,
          now: float) -> Claimed:
    """Assign the next queued job of the worker's class to it: one statement in the
    common case, the general path (``_claim_general``) otherwise."""
    who.require_owner(worker.owner_id, f"worker {worker.name!r}")
    params = _claim_params(worker, session, settings, now)
    with db.hot() as cur:
        row = _claim_row(db, cur, params)
    if row is None:
        return _claim_general(db, worker, session, settings, now)
    return _claimed(row, settings)


class ClaimAsk(NamedTuple):
    """One worker's claim in a batch (``claim_batch_async``)."""

    worker: WorkerRef
    session: int


class HotAssignment(NamedTuple):
    """A job claimed on the hot path, as its reply needs it: the cell is the JSON text
    stored at submit (the planner's ``Cell``, dumped), passed on as it is instead of being
    decoded, validated and encoded again for every claim."""

    job_id: int
    plan_id: int
    attempt: int
    cell_json: str
    #: the declared timeout plus the service's slack
    timeout_s: float

    def reply_json(self) -> bytes:
        """The ``ClaimReply`` of this job as JSON (pure)."""
        return (b'{"job":{"job_id":%d,"plan_id":%d,"attempt":%d,"cell":%s,"timeout_s":%s}}'
                % (self.job_id, self.plan_id, self.attempt, self.cell_json.encode(),
                   json.dumps(self.timeout_s).encode()))

    def assignment(self) -> Assignment:
        return Assignment(job_id=self.job_id, plan_id=self.plan_id, attempt=self.attempt,
                          cell=Cell.model_validate_json(self.cell_json),
                          timeout_s=self.timeout_s)


#: PostgreSQL: several workers' claims of one class in one statement. ``asks`` are the
#: claims in the common case (the guards of ``_CLAIM_GUARDS``, per worker); as many
#: queued jobs are locked (``SKIP LOCKED``) and paired with them in order: the first ask
#: gets the first job by priority, then age. An ask that passed the guards but found no
#: job comes back without one (there is nothing for it now); an ask that failed a guard
#: is not returned: it takes the general path.
_CLAIM_MANY_PG = HotSql(f"""
WITH asks AS (
    SELECT a.wid, a.n
    FROM unnest(CAST(:wids AS BIGINT[]), CAST(:sessions AS BIGINT[]),
                CAST(:suts AS BIGINT[])) WITH ORDINALITY AS a(wid, session, sut, n)
    WHERE EXISTS (SELECT 1 FROM workers w WHERE w.id = a.wid AND w.session = a.session
                  AND w.state = '{WorkerState.ONLINE.value}')
      AND NOT EXISTS (SELECT 1 FROM jobs h WHERE h.worker_id = a.wid
                      AND h.state IN ({_HELD}))
      AND NOT EXISTS (SELECT 1 FROM leases l WHERE (l.sutclass_id = :cls AND
                      l.state = '{LeaseState.QUEUED.value}') OR
                      (l.sut_id = a.sut AND l.state = '{LeaseState.ACQUIRED.value}'))
), picked AS (
    SELECT id, priority, submitted_at FROM jobs
    WHERE sutclass_id = :cls AND state IN ({_CLAIMABLE})
    ORDER BY priority DESC, submitted_at, id LIMIT (SELECT count(*) FROM asks)
    FOR UPDATE SKIP LOCKED
), pairs AS (
    SELECT p.id, a.wid, a.n
    FROM (SELECT id, row_number() OVER (ORDER BY priority DESC, submitted_at, id) AS k
          FROM picked) p
    JOIN (SELECT wid, n, row_number() OVER (ORDER BY n) AS k FROM asks) a USING (k)
), claimed AS (
    UPDATE jobs SET {_CLAIM_SET.replace(":wid", "pairs.wid")}
    FROM pairs WHERE jobs.id = pairs.id
    RETURNING pairs.n, jobs.id, jobs.plan_id, CAST(jobs.cell AS TEXT) AS cell,
              jobs.timeout_s, jobs.attempt
), started AS (
    UPDATE plans SET state = '{PlanState.RUNNING.value}', started_at = :now
    WHERE id IN (SELECT plan_id FROM claimed) AND state IN ({_PLAN_STARTABLE})
)
SELECT a.n, c.id, c.plan_id, c.cell, c.timeout_s, c.attempt
FROM asks a LEFT JOIN claimed c ON c.n = a.n""")
#: SQLite: whether a claim that got no job passed the guards (then the class simply has
#: no queued job now), in the claim's own transaction
_CLAIM_GUARDS_HOLD = HotSql(f"SELECT 1 WHERE 1 = 1{_CLAIM_GUARDS}")


class NoJob(NamedTuple):
    """A hot claim's answer when its common case held but no job was queued: nothing
    for the worker now, as the general path would have said."""


NO_JOB = NoJob()


async def claim_batch_async(db: Database, asks: list[ClaimAsk], settings: Settings,
                            now: float) -> list[HotAssignment | NoJob | None]:
    """``claim``'s common case for several workers at once, on the event loop
    (``Database.hot_async``), in one transaction: on SQLite one statement pair per
    claim inside one ``BEGIN IMMEDIATE``; on PostgreSQL one statement per SUT class
    (``_CLAIM_MANY_PG``). The caller checked each worker's owner. Per ask: the job,
    ``NO_JOB`` (the common case, but no job queued), or None when the common case did
    not hold (then ``claim`` in a thread sorts the case out)."""
    slack = settings.timeout_slack_s
    out: list[HotAssignment | NoJob | None] = [None] * len(asks)
    async with db.hot_async() as cur:
        if db.is_sqlite:
            for i, ask in enumerate(asks):
                params = _claim_params(ask.worker, ask.session, settings, now)
                row = await cur.first(_CLAIM_SQLITE, params)
                if row is not None:
                    await cur.first(_PLAN_STARTED, {"plan": row[1], "now": now})
                    out[i] = HotAssignment(row[0], row[1], row[4], row[2], row[3] + slack)
                elif await cur.first(_CLAIM_GUARDS_HOLD, params) is not None:
                    out[i] = NO_JOB
            return out
        for rnd in batch_rounds([a.worker.id for a in asks]):
            classes: dict[int, list[int]] = {}
            for i in rnd:
                classes.setdefault(asks[i].worker.sutclass_id, []).append(i)
            for cls, idx in classes.items():
                rows = await cur.all(_CLAIM_MANY_PG, {
                    "wids": [asks[i].worker.id for i in idx],
                    "sessions": [asks[i].session for i in idx],
                    "suts": [asks[i].worker.sut_id for i in idx],
                    "cls": cls, "now": now, "slack": slack})
                for n, job_id, plan_id, cell, timeout_s, attempt in rows:
                    out[idx[n - 1]] = NO_JOB if job_id is None else HotAssignment(
                        job_id, plan_id, attempt, cell, timeout_s + slack)
    return out


def _claim_params(worker: WorkerRef, session: int, settings: Settings, now: float
                  ) -> dict[str, Any]:
    return {"wid": worker.id, "session": session, "cls": worker.sutclass_id,
            "sut": worker.sut_id, "now": now, "slack": settings.timeout_slack_s}


def _claim_row(db: Database, cur: HotCursor, params: dict[str, Any]) -> Any:
    if not db.is_sqlite:
        return cur.execute(_CLAIM_PG, params).first()
    row = cur.execute(_CLAIM_SQLITE, params).first()
    if row is not None:
        cur.execute(_PLAN_STARTED, {"plan": row[1], "now": params["now"]})
    return row


def _claimed(row: Any, settings: Settings) -> Claimed:
    job_id, plan_id, cell, timeout_s, attempt = row
    return Claimed(job=Assignment(job_id=job_id, plan_id=plan_id, attempt=attempt,
                                  cell=Cell.model_validate(json_value(cell)),
                                  timeout_s=timeout_s + settings.timeout_slack_s))


def _claim_general(db: Database, worker: WorkerRef, session: int, settings: Settings,
                   now: float) -> Claimed:
    """Every case: a replaced session, a worker the reaper took for lost (its claim
    shows it alive: it is online again, as after a heartbeat, so the reaper watches the
    job it gets), a job the worker still holds (it gave it up), a leased SUT, a queued
    lease whose turn it is, or no job at all."""
    name = worker.name
    with db.write() as s:
        w = s.get(WorkerRow, worker.id)
        if w is None:
            raise NotFound(f"no worker {name!r}: register it first (ktstr sched worker)")
        if session != w.session:
            raise Conflict(f"worker {name!r} session {session} was replaced by session "
                           f"{w.session}; register again")
        if w.state != WorkerState.ONLINE.value:
            move_worker(w, WorkerState.ONLINE)
            w.last_heartbeat = now
        held = s.scalars(select(JobRow).where(JobRow.worker_id == worker.id,
                                              JobRow.state.in_(ACTIVE))).all()
        for job in held:  # a worker runs one job at a time: it gave that one up
            requeue_or_fail(s, job, f"worker {name} claimed again while holding it",
                            settings, now)
        if worker.sut_id in leased_sut_ids(s, worker.sutclass_id):
            return Claimed()  # a leased SUT receives no jobs
        head = first_in_line(waiting(s, worker.sutclass_id, 1))
        if head is not None and head.kind is Kind.LEASE:  # the lease's turn: it takes the SUT
            granted = acquire_on(s, head.id, worker.sut_id, settings, now)
            return Claimed(granted_leases=[head.id] if granted else [])
        require_job_transition("a queued job", JobState.QUEUED, JobState.ASSIGNED)
        pick = (select(JobRow.id).where(JobRow.sutclass_id == worker.sutclass_id,
                                        JobRow.state == JobState.QUEUED.value)
                .order_by(JobRow.priority.desc(), JobRow.submitted_at, JobRow.id).limit(1))
        if not db.is_sqlite:  # concurrent claims skip each other's rows instead of waiting
            pick = pick.with_for_update(skip_locked=True)
        row = s.execute(
            update(JobRow).where(JobRow.id == pick.scalar_subquery()).values(
                state=JobState.ASSIGNED.value, attempt=JobRow.attempt + 1,
                worker_id=worker.id, assigned_at=now,
                deadline=now + JobRow.timeout_s + settings.timeout_slack_s)
            .returning(JobRow.id, JobRow.plan_id, JobRow.cell, JobRow.timeout_s,
                       JobRow.attempt)).first()
        if row is None:
            return Claimed()
        job_id, plan_id, cell, timeout_s, attempt = row
        s.execute(update(PlanRow).where(PlanRow.id == plan_id,
                                        PlanRow.state == PlanState.QUEUED.value)
                  .values(state=PlanState.RUNNING.value, started_at=now))
        return Claimed(job=Assignment(job_id=job_id, plan_id=plan_id, attempt=attempt,
                                      cell=Cell.model_validate(cell),
                                      timeout_s=timeout_s + settings.timeout_slack_s))
