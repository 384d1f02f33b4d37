"""Version, identity, users and SUT classes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, status
from fastapi import Query as Param

from ktstr import __version__
from ktstr.service.auth import Capability
from ktstr.service.context import Admin, Ctx, Query, Who, tokens_changed
from ktstr.service.db.sutclasses import list_sutclasses
from ktstr.service.db.users import UserRow, create_user, disable_user, list_users, rotate_token
from ktstr.service.errors import ServiceError
from ktstr.service.schemas import (
    SutClassOut,
    TokenRotate,
    UserCreate,
    UserCreated,
    UserDisabled,
    UserOut,
    VersionOut,
    ts,
)
from ktstr.service.settings import PROTOCOL_VERSION
from ktstr.service.wakeup import DISPATCH_KEY

router = APIRouter()


@router.get("/version")
def version(who: Who) -> VersionOut:
    """The service's ktstr version and worker protocol (any valid token)."""
    return VersionOut(version=__version__, protocol=PROTOCOL_VERSION)


@router.get("/whoami")
def whoami(who: Who) -> UserOut:
    return UserOut(id=who.id, name=who.name, capabilities=sorted(who.capabilities),
                   created_at=datetime.now(UTC), token_expires_at=ts(who.token_expires_at))


def _user_out(row: UserRow) -> UserOut:
    return UserOut(id=row.id, name=row.name, capabilities=sorted(row.capabilities),
                   created_at=ts(row.created_at), disabled_at=ts(row.disabled_at),
                   token_expires_at=ts(row.token_expires_at))


@router.post("/users", status_code=status.HTTP_201_CREATED)
def user_create(body: UserCreate, who: Admin, ctx: Ctx) -> UserCreated:
    """Create a user; the answer holds its token, which is never shown again."""
    row, token = create_user(ctx.db, body.name, body.capabilities, ctx.clock(),
                             body.token_ttl_s)
    return UserCreated(id=row.id, name=row.name, capabilities=body.capabilities,
                       created_at=ts(row.created_at),
                       token_expires_at=ts(row.token_expires_at), token=token)


@router.get("/users")
def user_list(who: Admin, ctx: Ctx) -> list[UserOut]:
    """Every user, disabled ones included (tokens are never shown)."""
    return [_user_out(u) for u in list_users(ctx.db)]


@router.post("/users/{name}/disable")
def user_disable(name: str, who: Admin, ctx: Ctx) -> UserDisabled:
    """Refuse the user's token from now on; its plans and leases stay in the history,
    its queued and running plans are cancelled and its leases ended."""
    out = disable_user(ctx.db, name, who, ctx.settings, ctx.clock())
    tokens_changed(ctx)
    ctx.wakeup.notify(DISPATCH_KEY)  # its dispatched running jobs are cancelled
    for cls in out.sutclasses:
        ctx.wakeup.notify(cls)  # freed SUTs may take jobs
    ctx.lease_events.notify(None)
    return UserDisabled(user=_user_out(out.user), cancelled_plans=out.cancelled_plans,
                        ended_leases=out.ended_leases)


@router.post("/users/{name}/token")
def token_rotate(name: str, body: TokenRotate, who: Who, ctx: Ctx) -> UserCreated:
    """A new token for the user (an admin for anyone, every user for itself); the old
    one is refused from now on. The answer holds the token, shown only this once."""
    if name != who.name:
        who.require(Capability.ADMIN)
    row, token = rotate_token(ctx.db, name, ctx.clock(), body.token_ttl_s)
    tokens_changed(ctx)
    out = _user_out(row)
    return UserCreated(**out.model_dump(), token=token)


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


@router.get("/sutclasses")
def sutclasses(who: Query, ctx: Ctx,
               from_: Annotated[datetime | None, Param(alias="from")] = None,
               to: datetime | None = None) -> list[SutClassOut]:
    """SUT classes with current use, or the busy share within [from, to)."""
    lo, hi = _epoch(from_), _epoch(to)
    if lo is not None and hi is not None and hi <= lo:
        raise ServiceError(f"empty usage window: from ({from_}) must be before to ({to})")
    return list_sutclasses(ctx.db, ctx.clock(), lo, hi)
