"""The pull-worker protocol: register, heartbeat, claim (long-poll), start, result."""

from __future__ import annotations

import asyncio
import contextlib
import time

import anyio.to_thread
from fastapi import APIRouter, Response

from ktstr.service.auth import Principal
from ktstr.service.context import Ctx, Lease, Query, ServiceContext
from ktstr.service.db import claims, jobs, reports, workers
from ktstr.service.db.claims import ClaimAsk, Claimed, HotAssignment
from ktstr.service.db.jobs import WorkerRef
from ktstr.service.db.reports import ResultAsk
from ktstr.service.publish import keep_and_publish
from ktstr.service.schemas import (
    ClaimReply,
    ClaimRequest,
    Heartbeat,
    HeartbeatReply,
    JobResultIn,
    JobStart,
    WorkerGoodbye,
    WorkerOut,
    WorkerRegister,
    WorkerSession,
)
from ktstr.service.states import JobState

router = APIRouter()

#: a long-polling claim also retries this often, for changes the wake-ups cannot see
#: (another service process on the same database). Every in-process change that makes a
#: job claimable (submit, requeue) wakes waiters directly, so this can be slow: at 0.5 s,
#: 200 idle workers cost 400 empty claim transactions per second.
FALLBACK_POLL_S = 5.0
#: the claim's answer when there is no job
_NOTHING = ClaimReply(job=None).model_dump_json().encode()


@router.post("/workers/register")
def worker_register(body: WorkerRegister, who: Lease, ctx: Ctx) -> WorkerSession:
    """Version handshake; jobs a previous run of this worker held are requeued."""
    out = workers.register(ctx.db, who, body, ctx.settings, ctx.clock())
    # what its claims need, learned here (this request is in a thread already) rather
    # than by its first claim, which would wait for a thread and a read
    ctx.worker_refs[body.name] = jobs.worker_ref(ctx.db, body.name)
    if out.requeued_jobs:
        ctx.wakeup.notify(None)
    return out


@router.get("/workers")
def worker_list(who: Query, ctx: Ctx) -> list[WorkerOut]:
    return workers.list_workers(ctx.db)


@router.post("/workers/{name}/heartbeat")
def worker_heartbeat(name: str, body: Heartbeat, who: Lease, ctx: Ctx) -> HeartbeatReply:
    return workers.heartbeat(ctx.db, who, name, body, ctx.clock())


@router.post("/workers/{name}/offline")
def worker_offline(name: str, body: WorkerGoodbye, who: Lease, ctx: Ctx) -> WorkerOut:
    """A worker stopping cleanly says so: it is ``offline`` (not ``lost``), a job it
    still held is requeued at once, and its SUT may go to a queued lease."""
    out, requeued, granted = workers.goodbye(ctx.db, who, name, body, ctx.settings,
                                             ctx.clock())
    if requeued:
        ctx.wakeup.notify(None)
    if granted:
        ctx.lease_events.notify(None)
    return out


async def _worker_ref(ctx: ServiceContext, name: str) -> WorkerRef:
    ref = ctx.worker_refs.get(name)
    if ref is None:
        ref = await anyio.to_thread.run_sync(jobs.worker_ref, ctx.db, name)
        ctx.worker_refs[name] = ref
    return ref


@router.post("/workers/{name}/claim", response_model=ClaimReply)
async def worker_claim(name: str, body: ClaimRequest, who: Lease, ctx: Ctx) -> Response:
    """The next job for this worker's SUT, waiting up to ``wait_s`` for one."""
    return Response(await claim_reply(ctx, who, name, body), media_type="application/json")


async def claim_reply(ctx: ServiceContext, who: Principal, name: str, body: ClaimRequest
                      ) -> bytes:
    """The claim's ``ClaimReply`` as JSON (also served by ``ktstr.service.hotpath``,
    without FastAPI)."""
    wait = min(body.wait_s, ctx.settings.max_claim_wait_s)
    deadline = time.monotonic() + wait
    ref = await _worker_ref(ctx, name)
    who.require_owner(ref.owner_id, f"worker {name!r}")
    cls = ref.sutclass_id
    ask = ClaimAsk(ref, body.session)

    def attempt() -> Claimed:
        return claims.claim(ctx.db, who, ref, body.session, ctx.settings, ctx.clock())

    while True:
        fut = ctx.wakeup.subscribe(cls)
        try:
            # the common case on the event loop, batched with the claims of other
            # workers that arrive meanwhile (no thread hand-off); everything else in a
            # thread
            hot = await ctx.claims(ask)
            if hot is None:
                got = await anyio.to_thread.run_sync(attempt)
                for lease_id in got.granted_leases:
                    ctx.lease_events.notify_all(lease_id)
            left = deadline - time.monotonic()
            found = isinstance(hot, HotAssignment) or (hot is None and got.job is not None)
            if found or left <= 0:
                if fut.done() and not fut.cancelled():
                    # this claim absorbed a wake-up meant for a new job (it got another
                    # job, or its poll ends now): hand it to the next waiter here
                    ctx.wakeup.deliver(cls, 1)
                if isinstance(hot, HotAssignment):
                    return hot.reply_json()
                return (_NOTHING if hot is not None or got.job is None else
                        ClaimReply(job=got.job).model_dump_json().encode())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), min(left, FALLBACK_POLL_S))
        finally:
            ctx.wakeup.unsubscribe(cls, fut)


@router.post("/jobs/{job_id}/start")
async def job_start(job_id: int, body: JobStart, who: Lease, ctx: Ctx) -> None:
    ref = await _worker_ref(ctx, body.worker)
    await anyio.to_thread.run_sync(reports.start, ctx.db, who, job_id, body, ctx.clock(), ref)


@router.post("/jobs/{job_id}/result")
async def job_result(job_id: int, body: JobResultIn, who: Lease, ctx: Ctx
                     ) -> dict[str, JobState]:
    """Record the run's verdict and log; a requeued job's late result is accepted if no
    other worker has claimed it since."""
    return {"state": await record_result(ctx, who, job_id, body)}


async def record_result(ctx: ServiceContext, who: Principal, job_id: int, body: JobResultIn
                        ) -> JobState:
    """The result (also served by ``ktstr.service.hotpath``, without FastAPI)."""
    ref = await _worker_ref(ctx, body.worker)
    who.require_owner(ref.owner_id, f"worker {body.worker!r}")
    # the common case on the event loop, batched with the results that arrive meanwhile,
    # and its files under --storage too unless it publishes (the result store is another
    # database)
    log_path = reports.keep_log(job_id, body, ctx.settings.logs_dir)
    done = await ctx.results(ResultAsk(job_id, body, ref, log_path))
    if (done is not None and done.facts is not None
            and not (done.facts.publish and ctx.settings.resultstore)):
        keep_and_publish(ctx, job_id, (body, done))
        return done.state
    now = ctx.clock()

    def record() -> JobState:
        got = done or reports.finish_result(ctx.db, who, job_id, body,
                                            ctx.settings.logs_dir, now)
        keep_and_publish(ctx, job_id, (body, got))
        return got.state

    return await anyio.to_thread.run_sync(record)
