"""Version, identity, users and SUT classes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, status
from fastapi import Query as Param

from ktstr import __version__
from ktstr.service.context import Admin, Ctx, Query, Who
from ktstr.service.db.sutclasses import list_sutclasses
from ktstr.service.db.users import create_user
from ktstr.service.schemas import SutClassOut, UserCreate, UserCreated, UserOut, VersionOut, ts
from ktstr.service.settings import PROTOCOL_VERSION

router = APIRouter()


@router.get("/version")
def version(who: Who) -> VersionOut:
    """The service's ktstr version and worker protocol (any valid token)."""
    return VersionOut(version=__version__, protocol=PROTOCOL_VERSION)


@router.get("/whoami")
def whoami(who: Who) -> UserOut:
    return UserOut(id=who.id, name=who.name, capabilities=sorted(who.capabilities),
                   created_at=datetime.now(UTC))


@router.post("/users", status_code=status.HTTP_201_CREATED)
def user_create(body: UserCreate, who: Admin, ctx: Ctx) -> UserCreated:
    """Create a user; the answer holds its token, which is never shown again."""
    row, token = create_user(ctx.db, body.name, body.capabilities, ctx.clock())
    return UserCreated(id=row.id, name=row.name, capabilities=body.capabilities,
                       created_at=ts(row.created_at), token=token)


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


@router.get("/sutclasses")
def sutclasses(who: Query, ctx: Ctx,
               from_: Annotated[datetime | None, Param(alias="from")] = None,
               to: datetime | None = None) -> list[SutClassOut]:
    """SUT classes with current use, or the busy share within [from, to)."""
    return list_sutclasses(ctx.db, ctx.clock(), _epoch(from_), _epoch(to))
