"""The pull-worker protocol: register, heartbeat, claim (long-poll), start, result."""

from __future__ import annotations

import asyncio
import contextlib
import time

import anyio.to_thread
from fastapi import APIRouter

from ktstr.service.context import Ctx, Lease, Query
from ktstr.service.db import jobs, workers
from ktstr.service.publish import keep_and_publish
from ktstr.service.schemas import (
    ClaimReply,
    ClaimRequest,
    Heartbeat,
    HeartbeatReply,
    JobResultIn,
    JobStart,
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


@router.post("/workers/register")
def worker_register(body: WorkerRegister, who: Lease, ctx: Ctx) -> WorkerSession:
    """Version handshake; jobs a previous run of this worker held are requeued."""
    out = workers.register(ctx.db, who, body, ctx.settings, ctx.clock())
    ctx.worker_classes.pop(body.name, None)
    if out.requeued_jobs:
        ctx.wakeup.notify(None)
    return out


@router.get("/workers")
def worker_list(who: Query, ctx: Ctx) -> list[WorkerOut]:
    return workers.list_workers(ctx.db)


@router.post("/workers/{name}/heartbeat")
def worker_heartbeat(name: str, body: Heartbeat, who: Lease, ctx: Ctx) -> HeartbeatReply:
    return workers.heartbeat(ctx.db, who, name, body, ctx.clock())


@router.post("/workers/{name}/claim")
async def worker_claim(name: str, body: ClaimRequest, who: Lease, ctx: Ctx) -> ClaimReply:
    """The next job for this worker's SUT, waiting up to ``wait_s`` for one."""
    wait = min(body.wait_s, ctx.settings.max_claim_wait_s)
    deadline = time.monotonic() + wait

    def attempt() -> ClaimReply:
        return ClaimReply(job=jobs.claim(ctx.db, who, name, body.session, ctx.settings,
                                         ctx.clock()))

    cls = ctx.worker_classes.get(name)
    if cls is None:
        cls = await anyio.to_thread.run_sync(workers.sutclass_of, ctx.db, name)
        ctx.worker_classes[name] = cls
    while True:
        fut = ctx.wakeup.subscribe(cls)
        try:
            reply = await anyio.to_thread.run_sync(attempt)
            left = deadline - time.monotonic()
            if reply.job is not None or left <= 0:
                if fut.done() and not fut.cancelled():
                    # this claim absorbed a wake-up meant for a new job (it got another
                    # job, or its poll ends now): hand it to the next waiter
                    ctx.wakeup.notify(cls, 1)
                return reply
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), min(left, FALLBACK_POLL_S))
        finally:
            ctx.wakeup.unsubscribe(cls, fut)


@router.post("/jobs/{job_id}/start")
def job_start(job_id: int, body: JobStart, who: Lease, ctx: Ctx) -> None:
    jobs.start(ctx.db, who, job_id, body, ctx.clock())


@router.post("/jobs/{job_id}/result")
def job_result(job_id: int, body: JobResultIn, who: Lease, ctx: Ctx) -> dict[str, JobState]:
    """Record the run's verdict and log; a requeued job's late result is accepted if no
    other worker has claimed it since."""
    state = jobs.finish(ctx.db, who, job_id, body, ctx.settings.logs_dir, ctx.clock())
    keep_and_publish(ctx, job_id)
    return {"state": state}
