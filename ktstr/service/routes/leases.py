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

from ktstr.service.context import Ctx, Lease, Query
from ktstr.service.db import leases
from ktstr.service.db.leases import LeaseFilter
from ktstr.service.db.users import users_by_name
from ktstr.service.errors import NotFound
from ktstr.service.leases import LeaseAcquire, LeaseOut
from ktstr.service.states import LeaseState

router = APIRouter()

DEFAULT_STATES = [LeaseState.QUEUED, LeaseState.ACQUIRED]
#: a waiting lease also re-reads its row this often, for grants the wake-ups do not see
#: (a worker's claim handing its SUT over, another service process)
FALLBACK_POLL_S = 0.5
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


@router.get("/leases")
def lease_list(who: Query, ctx: Ctx,
               states: Annotated[list[LeaseState] | None, Param()] = None,
               users: Annotated[list[str] | None, Param()] = None,
               all_users: bool = False, all_states: bool = False) -> list[LeaseOut]:
    """Leases; by default the caller's own, queued or acquired."""
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
async def lease_show(lease_id: int, who: Query, ctx: Ctx,
                     wait_s: Annotated[float, Param(ge=0)] = 0.0) -> LeaseOut:
    """One lease; with ``wait_s`` the answer waits until it leaves ``queued``."""
    deadline = time.monotonic() + min(wait_s, MAX_WAIT_S)
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
    cls = leases.release(ctx.db, who, lease_id, ctx.settings, ctx.clock())
    ctx.wakeup.notify(cls)
    ctx.lease_events.notify(None)
    return _one(ctx, lease_id)
