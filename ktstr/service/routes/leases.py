"""Leases: acquire (optionally long-polling until a SUT is assigned), list, renew,
release."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, status
from fastapi import Query as Param

from ktstr.service.auth import Capability, Principal
from ktstr.service.context import Ctx, Lease, Who
from ktstr.service.db import leases
from ktstr.service.db.leases import LeaseFilter
from ktstr.service.db.users import users_by_name
from ktstr.service.errors import NotFound
from ktstr.service.leases import LeaseAcquire, LeaseOut
from ktstr.service.states import LeaseState

router = APIRouter()

DEFAULT_STATES = [LeaseState.QUEUED, LeaseState.ACQUIRED]
#: a waiting lease also re-reads its row this often, only for grants made by another
#: service process on the same database: every grant in this process (a release, an
#: expiry, a worker's claim or clean stop handing its SUT over, a disabled user's SUT)
#: wakes the lease's waiters directly
FALLBACK_POLL_S = 5.0
MAX_WAIT_S = 60.0


def _one(ctx: Ctx, lease_id: int) -> LeaseOut:
    found = leases.list_leases(ctx.db, LeaseFilter(lease_id=lease_id))
    if not found:
        raise NotFound(f"no lease {lease_id}")
    return found[0]


@router.post("/leases", status_code=status.HTTP_201_CREATED)
def lease_acquire(body: LeaseAcquire, who: Lease, ctx: Ctx) -> LeaseOut:
    """Queue a lease on one SUT of the class; it is acquired at once if a SUT is free
    and no queued job or lease is ahead of it."""
    lease_id, _cls = leases.request(ctx.db, who, body.sutclass, body.priority, ctx.settings,
                                    ctx.clock())
    return _one(ctx, lease_id)


def _own_or_query(who: Principal, owner_id: int, what: str) -> None:
    """Own leases need only ``lease``; anyone else's need ``query``."""
    if owner_id == who.id:
        who.require_any(Capability.LEASE, Capability.QUERY)
    else:
        who.require(Capability.QUERY)


@router.get("/leases")
def lease_list(who: Who, ctx: Ctx,
               states: Annotated[list[LeaseState] | None, Param()] = None,
               users: Annotated[list[str] | None, Param()] = None,
               all_users: bool = False, all_states: bool = False) -> list[LeaseOut]:
    """Leases; by default the caller's own, queued or acquired (own leases need the
    lease or query capability, others' need query)."""
    if users or all_users:
        who.require(Capability.QUERY)
    else:
        who.require_any(Capability.LEASE, Capability.QUERY)
    if users:
        known = users_by_name(ctx.db, users)
        missing = sorted(set(users) - set(known))
        if missing:
            raise NotFound(f"unknown user(s): {', '.join(missing)}")
        owners: list[int] | None = list(known.values())
    else:
        owners = None if all_users else [who.id]
    chosen = states if states else (None if all_states else DEFAULT_STATES)
    return leases.list_leases(ctx.db, LeaseFilter(owners=owners, states=chosen))


@router.get("/leases/{lease_id}")
async def lease_show(lease_id: int, who: Who, ctx: Ctx,
                     wait_s: Annotated[float, Param(ge=0)] = 0.0) -> LeaseOut:
    """One lease; with ``wait_s`` the answer waits until it leaves ``queued``. A queued
    lease waited on is cancelled if its waiter stops polling (``lease_poll_grace_s``
    after its last poll ends)."""
    owner = await anyio.to_thread.run_sync(leases.owner_of, ctx.db, lease_id)
    _own_or_query(who, owner, f"lease {lease_id}")
    wait = min(wait_s, MAX_WAIT_S)
    deadline = time.monotonic() + wait
    if wait > 0:
        await anyio.to_thread.run_sync(leases.watch, ctx.db, lease_id,
                                       ctx.clock() + wait + ctx.settings.lease_poll_grace_s)
    while True:
        fut = ctx.lease_events.subscribe(lease_id)
        try:
            out = await anyio.to_thread.run_sync(_one, ctx, lease_id)
            left = deadline - time.monotonic()
            if out.state is not LeaseState.QUEUED or left <= 0:
                return out
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), min(left, FALLBACK_POLL_S))
        finally:
            ctx.lease_events.unsubscribe(lease_id, fut)


@router.post("/leases/{lease_id}/renew")
def lease_renew(lease_id: int, who: Lease, ctx: Ctx) -> LeaseOut:
    """Push the expiry of an acquired lease to now + the service's lease maximum
    (a holder's heartbeat)."""
    leases.renew(ctx.db, who, lease_id, ctx.settings, ctx.clock())
    return _one(ctx, lease_id)


@router.post("/leases/{lease_id}/release")
def lease_release(lease_id: int, who: Lease, ctx: Ctx) -> LeaseOut:
    """Release an acquired lease (its SUT returns to the pool) or cancel a queued one."""
    cls, granted = leases.release(ctx.db, who, lease_id, ctx.settings, ctx.clock())
    ctx.wakeup.notify(cls)
    for other in [lease_id, *granted]:
        ctx.lease_events.notify_all(other)
    return _one(ctx, lease_id)
