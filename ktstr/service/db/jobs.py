"""Job lifecycle queries: claim, start, finish, requeue, and the reaper's sweep.

Claims are the hot path: one short write transaction that picks the next queued job of
the worker's class (highest priority, then oldest) and assigns it. On SQLite the
transaction holds the single write lock (``BEGIN IMMEDIATE``); on PostgreSQL the row is
taken with ``FOR UPDATE SKIP LOCKED`` so concurrent claims never wait on each other.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from ktstr.contract import Assignment, Cell
from ktstr.declare.base import Frozen
from ktstr.results.model import Verdict
from ktstr.service.auth import Principal
from ktstr.service.db.engine import Database, HotCursor, HotSql
from ktstr.service.db.leases import acquire_on, leased_sut_ids, sweep, waiting
from ktstr.service.db.plans import close_plan_if_done
from ktstr.service.db.tables import JobRow, PlanRow, ServiceClock, SutRow, WorkerRow
from ktstr.service.errors import Conflict, NotFound
from ktstr.service.leases import Kind, first_in_line
from ktstr.service.schemas import JobResultIn, JobStart
from ktstr.service.settings import Settings
from ktstr.service.states import (
    JOB_TRANSITIONS,
    PLAN_TRANSITIONS,
    WORKER_TRANSITIONS,
    JobState,
    LeaseState,
    PlanState,
    WorkerState,
    require_job_transition,
    sources,
)

_ACTIVE = (JobState.ASSIGNED.value, JobState.RUNNING.value)
_UNFINISHED = (JobState.QUEUED.value, *_ACTIVE)


class ReapReport(Frozen):
    lost_workers: list[str] = []
    requeued: list[int] = []
    failed: list[int] = []
    timed_out: list[int] = []
    acquired_leases: list[int] = []
    expired_leases: list[int] = []
    cancelled_leases: list[int] = []


def worker_for(s: Session, name: str, who: Principal) -> WorkerRow:
    w = s.scalar(select(WorkerRow).where(WorkerRow.name == name))
    if w is None:
        raise NotFound(f"no worker {name!r}: register it first (ktstr sched worker)")
    who.require_owner(w.owner_id, f"worker {name!r}")
    return w


def _move(job: JobRow, to: JobState) -> None:
    require_job_transition(f"job {job.id}", JobState(job.state), to)
    job.state = to.value


def requeue_or_fail(s: Session, job: JobRow, reason: str, settings: Settings,
                    now: float) -> JobState:
    """The job's worker is gone: queue it again, or fail it after ``max_tries`` losses."""
    job.lost_count += 1
    plan = s.get(PlanRow, job.plan_id)
    assert plan is not None
    if plan.cancel_requested:
        _move(job, JobState.CANCELLED)
        job.reasons = [f"{reason}; not requeued: the plan was cancelled"]
    elif job.lost_count >= settings.max_tries:
        _move(job, JobState.FAILED)
        job.outcome = Verdict.ERROR.value
        job.reasons = [f"{reason}; gave up after {job.lost_count} lost attempts"]
    else:
        _move(job, JobState.QUEUED)
        job.reasons = [reason]
        job.assigned_at = job.started_at = job.deadline = None
        return JobState.QUEUED
    job.finished_at = now
    close_plan_if_done(s, job.plan_id, now)
    return JobState(job.state)


class WorkerRef(Frozen):
    """What the claim path needs of a worker row; stable for the row's life (the id,
    owner and SUT of a worker name never change), so the routes cache it."""

    id: int
    name: str
    owner_id: int
    sut_id: int
    sutclass_id: int


class Claimed(Frozen):
    """A claim's answer: the job (None: nothing for this worker now) and the queued
    leases that the claim granted instead (their waiters are woken)."""

    job: Assignment | None = None
    granted_leases: list[int] = []


def worker_ref(db: Database, name: str) -> WorkerRef:
    with db.read() as s:
        row = s.execute(select(WorkerRow.id, WorkerRow.owner_id, SutRow.id, SutRow.sutclass_id)
                        .join(SutRow, SutRow.id == WorkerRow.sut_id)
                        .where(WorkerRow.name == name)).first()
    if row is None:
        raise NotFound(f"no worker {name!r}: register it first (ktstr sched worker)")
    return WorkerRef(id=row[0], name=name, owner_id=row[1], sut_id=row[2],
                     sutclass_id=row[3])


def _in(states: Iterable[str]) -> str:
    """``'a', 'b'`` for a SQL ``IN (...)`` of state values (enum values, never input)."""
    return ", ".join(f"'{v}'" for v in states)


#: states whose rows the one-statement paths may move, from the transition tables
_CLAIMABLE = _in(sources(JOB_TRANSITIONS, JobState.ASSIGNED))  # 'queued'
_HELD = _in(_ACTIVE)
_LIVE = _in(_UNFINISHED)
_PLAN_STARTABLE = _in(sources(PLAN_TRANSITIONS, PlanState.RUNNING))
_PLAN_CLOSABLE = _in(sources(PLAN_TRANSITIONS, PlanState.COMPLETED))

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


def _rounds(keys: list[int]) -> list[list[int]]:
    """Indexes of ``keys`` in rounds in which no key repeats, in order (pure): one
    statement must not claim twice for one worker or record one job twice."""
    rounds: list[list[int]] = []
    seen: list[set[int]] = []
    for i, key in enumerate(keys):
        r = next((r for r, keys_of in enumerate(seen) if key not in keys_of), len(rounds))
        if r == len(rounds):
            rounds.append([])
            seen.append(set())
        rounds[r].append(i)
        seen[r].add(key)
    return rounds


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
        for rnd in _rounds([a.worker.id for a in asks]):
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
                                  cell=Cell.model_validate(_json_value(cell)),
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
                                              JobRow.state.in_(_ACTIVE))).all()
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


def _job_of(s: Session, db: Database, job_id: int, w: WorkerRow, attempt: int) -> JobRow:
    q = select(JobRow).where(JobRow.id == job_id)
    if not db.is_sqlite:
        q = q.with_for_update()
    job = s.scalar(q)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.worker_id != w.id or job.attempt != attempt:
        raise Conflict(f"job {job_id} attempt {attempt} is not held by worker {w.name!r}: "
                       f"it is at attempt {job.attempt} ({job.state})")
    return job


_START = HotSql(f"""
UPDATE jobs SET state = '{JobState.RUNNING.value}', started_at = :now
WHERE id = :id AND worker_id = :wid AND attempt = :attempt
  AND state IN ({_in(sources(JOB_TRANSITIONS, JobState.RUNNING))})""")


def start(db: Database, who: Principal, job_id: int, req: JobStart, now: float,
          worker: WorkerRef | None = None) -> None:
    """The worker began running the job: one statement when ``worker`` (the caller's
    cached row) is given and the job is the worker's, the ORM path otherwise (it names
    what is wrong)."""
    if worker is not None and worker.name == req.worker:
        who.require_owner(worker.owner_id, f"worker {worker.name!r}")
        with db.hot() as cur:
            done = cur.execute(_START, {"id": job_id, "wid": worker.id,
                                        "attempt": req.attempt, "now": now}).rowcount
        if done == 1:
            return
    with db.write() as s:
        w = worker_for(s, req.worker, who)
        job = _job_of(s, db, job_id, w, req.attempt)
        _move(job, JobState.RUNNING)
        job.started_at = now


#: what the result's kept record needs besides the report itself, returned by the
#: result's own statement (``RecordFacts``): the job's plan and cell, and the plan's
#: publish flag, owner and SUT class (a second read per result cost more than the update)
_RECORD_FACTS = """plan_id, cell,
    (SELECT p.publish FROM plans p WHERE p.id = jobs.plan_id) AS publish,
    (SELECT u.name FROM plans p JOIN users u ON u.id = p.owner_id
     WHERE p.id = jobs.plan_id) AS owner,
    (SELECT c.name FROM plans p JOIN sutclasses c ON c.id = p.sutclass_id
     WHERE p.id = jobs.plan_id) AS sutclass"""

def _finish_sql(to: JobState, json_param: str) -> str:
    """The result's UPDATE; ``json_param`` wraps a JSON text parameter for the dialect."""
    return f"""
UPDATE jobs SET state = '{to.value}', outcome = :outcome,
       reasons = {json_param.format("reasons")}, result = {json_param.format("result")},
       duration_s = :duration, finished_at = :now,
       started_at = COALESCE(started_at, :now - :duration), log_path = :log_path
WHERE id = :id AND worker_id = :wid AND attempt = :attempt
  AND state IN ({_in(sources(JOB_TRANSITIONS, to))})
RETURNING {_RECORD_FACTS}"""


_FINISHED = (JobState.COMPLETED, JobState.FAILED, JobState.TIMED_OUT)
#: SQLite: the result, then the plan's close in a second statement of the transaction
_FINISH = {to: HotSql(_finish_sql(to, ":{}")) for to in _FINISHED}
#: PostgreSQL: the result and the plan's close in one statement (a data-modifying CTE;
#: its plan check runs on the statement's snapshot, hence ``id <> :id``)
_FINISH_PG = {to: HotSql(f"""
WITH done AS (
    {_finish_sql(to, "CAST(:{} AS JSON)").strip()}
), closed AS (
    UPDATE plans SET completed_at = :now,
           state = CASE WHEN state IN ({_PLAN_CLOSABLE})
                        THEN '{PlanState.COMPLETED.value}' ELSE state END
    WHERE id = (SELECT plan_id FROM done) AND completed_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM jobs WHERE plan_id = (SELECT plan_id FROM done)
                      AND id <> :id AND state IN ({_LIVE}))
)
SELECT * FROM done""") for to in _FINISHED}
#: close the plan when this job was its last unfinished one (the job is excluded by id:
#: on PostgreSQL the statement may not see the job's own update yet)
_CLOSE_PLAN = HotSql(f"""
UPDATE plans SET completed_at = :now,
       state = CASE WHEN state IN ({_PLAN_CLOSABLE}) THEN '{PlanState.COMPLETED.value}'
                    ELSE state END
WHERE id = :plan AND completed_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM jobs WHERE plan_id = :plan AND id <> :id
                  AND state IN ({_LIVE}))""")


def _json_value(value: Any) -> Any:
    """A JSON column's value as the DBAPI driver returns it (psycopg decodes JSON,
    sqlite3 gives its text)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


class RecordFacts(NamedTuple):
    """What a result's kept record needs besides the report (``ktstr.service.publish``),
    as the result's own statement returned it. (A tuple: built for every result.)"""

    plan_id: int
    #: the job's cell as stored (``Cell.model_dump(mode="json")`` at submit)
    cell: dict[str, Any]
    publish: bool
    owner: str
    sutclass: str
    worker: str
    #: the time the statement recorded as the job's end
    finished_at: float


class Finished(NamedTuple):
    """A recorded result: the job's new state, and the record facts when the one-statement
    path recorded it (None: the general path; the record is read back)."""

    state: JobState
    facts: RecordFacts | None = None


def _finish_state(res: JobResultIn) -> JobState:
    if res.timed_out:
        return JobState.TIMED_OUT
    return JobState.FAILED if res.failed else JobState.COMPLETED


def finish(db: Database, who: Principal, job_id: int, res: JobResultIn, logs_dir: Path,
           now: float, worker: WorkerRef | None = None) -> JobState:
    """Record a worker's result (``finish_result``); the job's new state."""
    return finish_result(db, who, job_id, res, logs_dir, now, worker).state


def finish_result(db: Database, who: Principal, job_id: int, res: JobResultIn,
                  logs_dir: Path, now: float, worker: WorkerRef | None = None) -> Finished:
    """Record a worker's result: one statement (PostgreSQL; two on SQLite) when ``worker``
    (the caller's cached row) is given and the job is the worker's, the ORM path
    otherwise."""
    if worker is not None and worker.name == res.worker:
        who.require_owner(worker.owner_id, f"worker {worker.name!r}")
        log_path = keep_log(job_id, res, logs_dir)
        with db.hot() as cur:
            done = _finish_fast(db, cur, job_id, res, log_path, now, worker)
        if done is not None:
            return done
    return _finish_general(db, who, job_id, res, logs_dir, now)


class ResultAsk(NamedTuple):
    """One worker's result in a batch (``finish_batch_async``)."""

    job_id: int
    report: JobResultIn
    worker: WorkerRef
    #: where its log was kept (``keep_log``), None without one
    log_path: str | None


def _finish_many_pg() -> HotSql:
    """PostgreSQL: several results in one statement (``_FINISH_PG`` for many jobs, each
    with its own target state), and the close of every plan whose last live job that
    was."""
    guard = " ".join(f"WHEN '{to.value}' THEN jobs.state IN "
                     f"({_in(sources(JOB_TRANSITIONS, to))})" for to in _FINISHED)
    return HotSql(f"""
WITH r AS (
    SELECT * FROM unnest(CAST(:ids AS BIGINT[]), CAST(:wids AS BIGINT[]),
                         CAST(:attempts AS INTEGER[]), CAST(:states AS TEXT[]),
                         CAST(:outcomes AS TEXT[]), CAST(:reasons AS TEXT[]),
                         CAST(:results AS TEXT[]), CAST(:durations AS FLOAT8[]),
                         CAST(:log_paths AS TEXT[]))
        AS r(id, wid, attempt, state, outcome, reasons, result, duration, log_path)
), done AS (
    UPDATE jobs SET state = r.state, outcome = r.outcome,
           reasons = CAST(r.reasons AS JSON), result = CAST(r.result AS JSON),
           duration_s = r.duration, finished_at = :now,
           started_at = COALESCE(jobs.started_at, :now - r.duration),
           log_path = r.log_path
    FROM r WHERE jobs.id = r.id AND jobs.worker_id = r.wid AND jobs.attempt = r.attempt
      AND CASE r.state {guard} ELSE FALSE END
    RETURNING jobs.id, {_RECORD_FACTS}
), closed AS (
    UPDATE plans SET completed_at = :now,
           state = CASE WHEN state IN ({_PLAN_CLOSABLE})
                        THEN '{PlanState.COMPLETED.value}' ELSE state END
    WHERE id IN (SELECT plan_id FROM done) AND completed_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.plan_id = plans.id
                      AND j.id NOT IN (SELECT id FROM done) AND j.state IN ({_LIVE}))
)
SELECT * FROM done""")


_FINISH_MANY_PG = _finish_many_pg()


async def finish_batch_async(db: Database, asks: list[ResultAsk], now: float
                             ) -> list[Finished | None]:
    """``finish_result``'s common case for several results at once, on the event loop
    (``Database.hot_async``), in one transaction: on SQLite a statement pair per result
    inside one ``BEGIN IMMEDIATE``; on PostgreSQL one statement (``_FINISH_MANY_PG``).
    The caller checked that each report is its worker's (name and owner). None for a
    result the job's state did not take (then ``finish_result`` in a thread names what is
    wrong)."""
    out: list[Finished | None] = [None] * len(asks)
    async with db.hot_async() as cur:
        if db.is_sqlite:
            for i, ask in enumerate(asks):
                to = _finish_state(ask.report)
                row = await cur.first(_FINISH[to], _finish_params(
                    ask.job_id, ask.report, ask.log_path, now, ask.worker))
                if row is not None:
                    await cur.first(_CLOSE_PLAN, {"plan": row[0], "id": ask.job_id,
                                                  "now": now})
                    out[i] = _finished(to, row, ask.worker, now)
            return out
        for rnd in _rounds([a.job_id for a in asks]):
            reports = [asks[i].report for i in rnd]
            rows = await cur.all(_FINISH_MANY_PG, {
                "ids": [asks[i].job_id for i in rnd],
                "wids": [asks[i].worker.id for i in rnd],
                "attempts": [r.attempt for r in reports],
                "states": [_finish_state(r).value for r in reports],
                "outcomes": [_outcome(r) for r in reports],
                "reasons": [json.dumps(r.reasons) for r in reports],
                "results": [json.dumps(r.details) for r in reports],
                "durations": [r.duration_s for r in reports],
                "log_paths": [asks[i].log_path for i in rnd], "now": now})
            where = {asks[i].job_id: i for i in rnd}
            for row in rows:
                i = where[row[0]]
                out[i] = _finished(_finish_state(asks[i].report), row[1:], asks[i].worker,
                                   now)
    return out


def keep_log(job_id: int, res: JobResultIn, logs_dir: Path) -> str | None:
    """Write the reported log (before the write transaction); its path, None if empty."""
    if not res.log:
        return None
    log_path = logs_dir / f"job-{job_id}-attempt-{res.attempt}.log"
    logs_dir.mkdir(parents=True, exist_ok=True)
    log_path.write_text(res.log)
    return str(log_path)


def _finish_fast(db: Database, cur: HotCursor, job_id: int, res: JobResultIn,
                 log_path: str | None, now: float, worker: WorkerRef) -> Finished | None:
    """The result in one statement if the job is the worker's at that attempt (None:
    nothing changed)."""
    to = _finish_state(res)
    params = _finish_params(job_id, res, log_path, now, worker)
    if db.is_sqlite:
        row = cur.execute(_FINISH[to], params).first()
        if row is not None:
            cur.execute(_CLOSE_PLAN, {"plan": row[0], "id": job_id, "now": now})
    else:
        row = cur.execute(_FINISH_PG[to], params).first()
    return None if row is None else _finished(to, row, worker, now)


def _finish_params(job_id: int, res: JobResultIn, log_path: str | None, now: float,
                   worker: WorkerRef) -> dict[str, Any]:
    return {"id": job_id, "wid": worker.id, "attempt": res.attempt, "now": now,
            "outcome": _outcome(res), "reasons": json.dumps(list(res.reasons)),
            "result": json.dumps(dict(res.details)), "duration": res.duration_s,
            "log_path": log_path}


def _finished(to: JobState, row: Any, worker: WorkerRef, now: float) -> Finished:
    plan_id, cell, publish, owner, sutclass = row
    return Finished(to, RecordFacts(plan_id, _json_value(cell), bool(publish), owner,
                                    sutclass, worker.name, now))


def _outcome(res: JobResultIn) -> str | None:
    return None if res.timed_out else (res.outcome or Verdict.ERROR).value


def _finish_general(db: Database, who: Principal, job_id: int, res: JobResultIn,
                    logs_dir: Path, now: float) -> Finished:
    log_path = logs_dir / f"job-{job_id}-attempt-{res.attempt}.log"
    with db.write() as s:
        w = worker_for(s, res.worker, who)
        job = _job_of(s, db, job_id, w, res.attempt)
        _move(job, _finish_state(res))
        job.outcome = _outcome(res)
        job.reasons = list(res.reasons)
        job.result = dict(res.details)
        job.duration_s = res.duration_s
        job.finished_at = now
        if job.started_at is None:
            job.started_at = now - res.duration_s
        if res.log:
            logs_dir.mkdir(parents=True, exist_ok=True)
            log_path.write_text(res.log)
            job.log_path = str(log_path)
        close_plan_if_done(s, job.plan_id, now)
        return Finished(state=JobState(job.state))


def job_log(db: Database, job_id: int) -> tuple[int, str | None]:
    """(owner id of the job's plan, log path)."""
    with db.read() as s:
        row = s.execute(select(PlanRow.owner_id, JobRow.log_path).join(
            PlanRow, PlanRow.id == JobRow.plan_id).where(JobRow.id == job_id)).first()
    if row is None:
        raise NotFound(f"no job {job_id}")
    return row[0], row[1]


def reap(db: Database, settings: Settings, now: float) -> ReapReport:
    """Mark silent workers lost (requeueing or failing their jobs), end overdue jobs,
    run the lease sweep, and stamp the service's liveness."""
    lost: list[str] = []
    requeued: list[int] = []
    failed: list[int] = []
    timed_out: list[int] = []
    with db.write() as s:
        silent = WorkerRow.last_heartbeat < now - settings.heartbeat_timeout_s
        for worker_id, name in move_workers(s, WorkerState.LOST, silent):
            lost.append(name)
            for job in s.scalars(select(JobRow).where(JobRow.worker_id == worker_id,
                                                      JobRow.state.in_(_ACTIVE))):
                new = requeue_or_fail(s, job, f"worker {name} lost (no heartbeat for "
                                      f"{settings.heartbeat_timeout_s:g}s)", settings, now)
                (requeued if new is JobState.QUEUED else failed).append(job.id)
        overdue = s.scalars(select(JobRow).where(JobRow.state.in_(_ACTIVE),
                                                 JobRow.deadline < now)).all()
        for job in overdue:
            _move(job, JobState.TIMED_OUT)
            job.finished_at = now
            job.reasons = [f"no result within the timeout ({job.timeout_s:g}s) plus "
                           f"{settings.timeout_slack_s:g}s slack"]
            timed_out.append(job.id)
            close_plan_if_done(s, job.plan_id, now)
        # plans whose last two jobs ended in concurrent transactions (PostgreSQL): neither
        # saw the other's commit, so close them here
        live = select(JobRow.id).where(JobRow.plan_id == PlanRow.id,
                                       JobRow.state.in_(_UNFINISHED))
        for plan_id in s.scalars(select(PlanRow.id).where(PlanRow.completed_at.is_(None),
                                                          ~live.exists())).all():
            close_plan_if_done(s, plan_id, now)
        leases = sweep(s, settings, now)
        stamp_alive(s, now)
    return ReapReport(lost_workers=lost, requeued=requeued, failed=failed,
                      timed_out=timed_out, acquired_leases=leases.acquired,
                      expired_leases=leases.expired, cancelled_leases=leases.cancelled)


def move_worker(w: WorkerRow, to: WorkerState) -> None:
    """Move one worker; ``WorkerRow`` checks it against ``WORKER_TRANSITIONS`` and
    raises ``InvalidTransition`` naming the actual and the wanted state."""
    w.state = to.value


def move_workers(s: Session, to: WorkerState, *where: ColumnElement[bool]
                 ) -> list[tuple[int, str]]:
    """Move every worker matching ``where`` to ``to`` in one UPDATE whose WHERE also
    requires a state that ``WORKER_TRANSITIONS`` lets move to ``to`` (a row-level guard:
    a worker in another state, or one that changed state meanwhile, is left alone).
    Returns the (id, name) of the workers moved, by id."""
    rows = s.execute(update(WorkerRow).where(
        WorkerRow.state.in_(sources(WORKER_TRANSITIONS, to)), *where)
        .values(state=to.value).returning(WorkerRow.id, WorkerRow.name)).all()
    return sorted((worker_id, name) for worker_id, name in rows)


def stamp_alive(s: Session, now: float) -> None:
    """Record that the service is alive now (one row)."""
    row = s.get(ServiceClock, 1)
    if row is None:
        s.add(ServiceClock(id=1, alive_at=now))
    else:
        row.alive_at = now


def mark_alive(db: Database, now: float) -> None:
    with db.write() as s:
        stamp_alive(s, now)


def forgive_outage(db: Database, now: float) -> float:
    """At service start: move every online worker's last heartbeat forward by the time
    the service was down, so the outage does not count as their silence, while silence
    from before the outage still does (a dead worker is not given a fresh timeout at each
    restart). Returns the outage in seconds (0 on the first start)."""
    with db.write() as s:
        alive_at = s.scalar(select(ServiceClock.alive_at).where(ServiceClock.id == 1))
        outage = max(0.0, now - alive_at) if alive_at is not None else 0.0
        if outage:
            # the workers the reaper could mark lost for their silence
            reapable = WorkerRow.state.in_(sources(WORKER_TRANSITIONS, WorkerState.LOST))
            s.execute(update(WorkerRow).where(reapable)
                      .values(last_heartbeat=func.min(WorkerRow.last_heartbeat + outage,
                                                      now)
                              if db.is_sqlite else
                              func.least(WorkerRow.last_heartbeat + outage, now)))
        stamp_alive(s, now)
    return outage
