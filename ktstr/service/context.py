"""What every request handler needs, built once per app and injected as a dependency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ktstr.service.auth import Capability, Principal
from ktstr.service.batch import Batcher
from ktstr.service.db.claims import ClaimAsk, HotAssignment, NoJob, claim_batch_async
from ktstr.service.db.engine import Database
from ktstr.service.db.jobs import WorkerRef
from ktstr.service.db.reports import Finished, ResultAsk, finish_batch_async
from ktstr.service.db.users import authenticate
from ktstr.service.errors import Unauthorized
from ktstr.service.settings import Settings
from ktstr.service.wakeup import Wakeup

if TYPE_CHECKING:
    from ktstr.service.relay import PgRelay
    from ktstr.service.resultstore import ResultStore


@dataclass
class ServiceContext:
    settings: Settings
    db: Database
    clock: Callable[[], float] = time.time
    wakeup: Wakeup = field(default_factory=Wakeup)
    #: wakes ``lease-acquire --wait`` long-polls (keyed by lease id) when leases change
    lease_events: Wakeup = field(default_factory=Wakeup)
    #: worker name -> its row's id, owner, SUT and class, learned at the first claim
    worker_refs: dict[str, WorkerRef] = field(default_factory=dict)
    #: token -> (expiry on the monotonic clock, caller): a short cache saves a database
    #: read on every request; disabling a user or rotating a token clears it here and,
    #: through the relay, in the other processes of ``--workers N`` (``tokens_changed``)
    auth_cache: dict[str, tuple[float, Principal]] = field(default_factory=dict)
    #: bumped by every clear of ``auth_cache``: a lookup that began before a clear does
    #: not cache what it read
    auth_generation: int = 0
    #: the --resultstore, opened at first use (ktstr.service.publish.result_store): by a
    #: publish or a dashboard page, from the request thread pool, hence the lock
    resultstore: ResultStore | None = None
    resultstore_lock: threading.Lock = field(default_factory=threading.Lock)
    #: the process that runs the reaper and the SSH/Slurm dispatcher (of several service
    #: processes on one database, exactly one: ``ktstr sched run --workers N``)
    primary: bool = True
    #: relay wake-ups to and from other service processes (PostgreSQL LISTEN/NOTIFY)
    relay_wakeups: bool = False
    #: that relay while the app runs
    relay: PgRelay | None = None
    #: at start-up, move every object allocated so far out of the garbage collector's
    #: sight (``gc.freeze``): for a process that only serves (``ktstr sched run``), not
    #: for a service in a test's process
    freeze_heap: bool = False
    #: claims and results served by ``ktstr.service.hotpath`` (the rest: by FastAPI)
    hot_served: int = 0
    #: the common case of claims and of results, batched (``ktstr.service.batch``)
    claims: Batcher[ClaimAsk, HotAssignment | NoJob | None] = field(init=False)
    results: Batcher[ResultAsk, Finished | None] = field(init=False)

    def __post_init__(self) -> None:
        # SQLite has one writer: one batch at a time (the other kind waits for the
        # lock); PostgreSQL runs a few batches at once on its hot connections
        slots = 1 if self.db.is_sqlite else HOT_BATCHES

        async def claim(asks: list[ClaimAsk]) -> list[HotAssignment | NoJob | None]:
            return await claim_batch_async(self.db, asks, self.settings, self.clock())

        async def finish(asks: list[ResultAsk]) -> list[Finished | None]:
            return await finish_batch_async(self.db, asks, self.clock())

        self.claims = Batcher(claim, slots=slots)
        self.results = Batcher(finish, slots=slots)


#: PostgreSQL: batches of each kind (claims, results) in flight at once per process
HOT_BATCHES = 2


#: seconds an authenticated token is remembered
AUTH_CACHE_S = 5.0


async def get_ctx(request: Request) -> ServiceContext:
    """(The dependencies here are ``async``: FastAPI runs plain functions in its thread
    pool, a thread hop per dependency per request.)"""
    ctx = request.app.state.ctx
    assert isinstance(ctx, ServiceContext)
    return ctx


_bearer = HTTPBearer(auto_error=False, description="a token from user-create")

Ctx = Annotated[ServiceContext, Depends(get_ctx)]


async def get_principal(ctx: Ctx, cred: Annotated[HTTPAuthorizationCredentials | None,
                                                  Depends(_bearer)]) -> Principal:
    if cred is None or cred.scheme.lower() != "bearer" or not cred.credentials:
        raise Unauthorized("missing Authorization: Bearer <token> header")
    token = cred.credentials
    cached = cached_principal(ctx, token)
    if cached is not None:
        return cached
    generation = ctx.auth_generation
    who = await anyio.to_thread.run_sync(authenticate, ctx.db, token, ctx.clock())
    if generation != ctx.auth_generation:  # credentials changed meanwhile: read again
        return who
    if len(ctx.auth_cache) > 10_000:
        ctx.auth_cache.clear()
    ctx.auth_cache[token] = (time.monotonic() + AUTH_CACHE_S, who)
    return who


def forget_cached_tokens(ctx: ServiceContext) -> None:
    """Forget every cached token of this process (a user was disabled or a token
    rotated, here or in another process)."""
    ctx.auth_generation += 1
    ctx.auth_cache.clear()


def tokens_changed(ctx: ServiceContext) -> None:
    """Credentials changed (after the change committed): forget cached tokens here and
    tell the other service processes on the database to do the same at once."""
    forget_cached_tokens(ctx)
    if ctx.relay is not None:
        ctx.relay.tokens_changed()


def cached_principal(ctx: ServiceContext, token: str) -> Principal | None:
    """The caller of ``token`` if authenticated within ``AUTH_CACHE_S`` and not expired
    since, else None (look it up)."""
    cached = ctx.auth_cache.get(token)
    if cached is not None and cached[0] > time.monotonic() and (
            cached[1].token_expires_at is None or cached[1].token_expires_at > ctx.clock()):
        return cached[1]
    return None


Who = Annotated[Principal, Depends(get_principal)]


def requires(cap: Capability) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency: the caller, who must hold ``cap`` (or admin)."""

    async def dep(who: Who) -> Principal:
        who.require(cap)
        return who

    dep.__name__ = f"requires_{cap.value}"
    return dep


Exec = Annotated[Principal, Depends(requires(Capability.EXEC))]
Query = Annotated[Principal, Depends(requires(Capability.QUERY))]
Lease = Annotated[Principal, Depends(requires(Capability.LEASE))]
Admin = Annotated[Principal, Depends(requires(Capability.ADMIN))]
