"""What every request handler needs, built once per app and injected as a dependency."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ktstr.service.auth import Capability, Principal
from ktstr.service.db.engine import Database
from ktstr.service.db.users import authenticate
from ktstr.service.errors import Unauthorized
from ktstr.service.settings import Settings
from ktstr.service.wakeup import Wakeup

if TYPE_CHECKING:
    from ktstr.service.resultstore import ResultStore


@dataclass
class ServiceContext:
    settings: Settings
    db: Database
    clock: Callable[[], float] = time.time
    wakeup: Wakeup = field(default_factory=Wakeup)
    #: wakes ``lease-acquire --wait`` long-polls (keyed by lease id) when leases change
    lease_events: Wakeup = field(default_factory=Wakeup)
    #: worker name -> SUT class id, learned at register/claim
    worker_classes: dict[str, int] = field(default_factory=dict)
    #: token -> (expiry on the monotonic clock, caller); users never change in place, so
    #: a short cache saves a database read on every request
    auth_cache: dict[str, tuple[float, Principal]] = field(default_factory=dict)
    #: the --resultstore, opened at the first publish (ktstr.service.publish)
    resultstore: ResultStore | None = None


#: seconds an authenticated token is remembered
AUTH_CACHE_S = 5.0


def get_ctx(request: Request) -> ServiceContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, ServiceContext)
    return ctx


_bearer = HTTPBearer(auto_error=False, description="a token from user-create")

Ctx = Annotated[ServiceContext, Depends(get_ctx)]


def get_principal(ctx: Ctx, cred: Annotated[HTTPAuthorizationCredentials | None,
                                            Depends(_bearer)]) -> Principal:
    if cred is None or cred.scheme.lower() != "bearer" or not cred.credentials:
        raise Unauthorized("missing Authorization: Bearer <token> header")
    token = cred.credentials
    cached = ctx.auth_cache.get(token)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    who = authenticate(ctx.db, token)
    if len(ctx.auth_cache) > 10_000:
        ctx.auth_cache.clear()
    ctx.auth_cache[token] = (now + AUTH_CACHE_S, who)
    return who


Who = Annotated[Principal, Depends(get_principal)]


def requires(cap: Capability) -> Callable[[Principal], Principal]:
    """A dependency: the caller, who must hold ``cap`` (or admin)."""

    def dep(who: Who) -> Principal:
        who.require(cap)
        return who

    dep.__name__ = f"requires_{cap.value}"
    return dep


Exec = Annotated[Principal, Depends(requires(Capability.EXEC))]
Query = Annotated[Principal, Depends(requires(Capability.QUERY))]
Lease = Annotated[Principal, Depends(requires(Capability.LEASE))]
Admin = Annotated[Principal, Depends(requires(Capability.ADMIN))]
