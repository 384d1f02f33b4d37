"""User rows: creation, token lookup, the first-start admin, listing, disabling and
token rotation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ktstr.declare.base import Frozen
from ktstr.service.auth import (
    Capability,
    Principal,
    format_capabilities,
    hash_token,
    new_token,
    parse_capabilities,
)
from ktstr.service.db.engine import Database
from ktstr.service.db.leases import cancel_user_leases
from ktstr.service.db.plans import cancel_in_session
from ktstr.service.db.tables import PlanRow, User
from ktstr.service.errors import Conflict, NotFound, Unauthorized
from ktstr.service.settings import Settings
from ktstr.service.states import PlanState

ADMIN_NAME = "admin"


def principal_of(user: User) -> Principal:
    return Principal(id=user.id, name=user.name,
                     capabilities=parse_capabilities(user.capabilities),
                     token_expires_at=user.token_expires_at)


def _expiry(now: float, ttl_s: float | None) -> float | None:
    return None if ttl_s is None else now + ttl_s


def create_user(db: Database, name: str, caps: Iterable[Capability], now: float,
                token_ttl_s: float | None = None) -> tuple[User, str]:
    """A new user and its token (the only time the token exists in clear)."""
    token = new_token()
    row = User(name=name, token_hash=hash_token(token),
               capabilities=format_capabilities(caps), created_at=now,
               token_expires_at=_expiry(now, token_ttl_s))
    try:
        with db.write() as s:
            if s.scalar(select(User.id).where(User.name == name)) is not None:
                raise Conflict(f"user {name!r} already exists")
            s.add(row)
    except IntegrityError as exc:
        raise Conflict(f"user {name!r} already exists") from exc
    return row, token


def ensure_admin(db: Database, now: float) -> str | None:
    """On the first start (no users yet) create ``admin``; return its token, else None."""
    with db.read() as s:
        if s.scalar(select(func.count()).select_from(User)):
            return None
    _, token = create_user(db, ADMIN_NAME, list(Capability), now)
    return token


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def authenticate(db: Database, token: str, now: float) -> Principal:
    with db.read() as s:
        user = s.scalar(select(User).where(User.token_hash == hash_token(token)))
    if user is None:
        raise Unauthorized("unknown token: check the token you saved with "
                           "`ktstr preference set --category sched --name token` (a "
                           "rotated token replaces the old one)")
    if user.disabled_at is not None:
        raise Unauthorized(f"user {user.name!r} was disabled at {_when(user.disabled_at)}; "
                           "ask an admin")
    if user.token_expires_at is not None and user.token_expires_at <= now:
        raise Unauthorized(f"the token of user {user.name!r} expired at "
                           f"{_when(user.token_expires_at)}; ask an admin for "
                           f"`ktstr sched token-rotate {user.name}`")
    return principal_of(user)


def users_by_name(db: Database, names: Iterable[str]) -> dict[str, int]:
    with db.read() as s:
        rows = s.execute(select(User.name, User.id).where(User.name.in_(list(names))))
        return {row[0]: row[1] for row in rows}


class UserRow(Frozen):
    """A user as ``user-list`` shows it (never its token)."""

    id: int
    name: str
    capabilities: frozenset[Capability]
    created_at: float
    disabled_at: float | None
    token_expires_at: float | None


def list_users(db: Database) -> list[UserRow]:
    with db.read() as s:
        return [UserRow(id=u.id, name=u.name, capabilities=parse_capabilities(u.capabilities),
                        created_at=u.created_at, disabled_at=u.disabled_at,
                        token_expires_at=u.token_expires_at)
                for u in s.scalars(select(User).order_by(User.id))]


def _by_name(s: Session, name: str) -> User:
    user = s.scalar(select(User).where(User.name == name))
    if user is None:
        known = ", ".join(s.scalars(select(User.name).order_by(User.name)))
        raise NotFound(f"no user {name!r}; users: {known}")
    return user


class Disabled(Frozen):
    user: UserRow
    cancelled_plans: list[int]
    ended_leases: list[int]
    granted_leases: list[int]
    sutclasses: list[int] = []


def disable_user(db: Database, name: str, by: Principal, settings: Settings,
                 now: float) -> Disabled:
    """Refuse the user's token from now on. Its plans and leases stay in the history;
    its queued and running plans are cancelled (queued jobs at once, running ones
    finish), its queued leases cancelled and its acquired ones released."""
    with db.write() as s:
        user = _by_name(s, name)
        if user.disabled_at is not None:
            raise Conflict(f"user {name!r} is already disabled")
        if Capability.ADMIN in parse_capabilities(user.capabilities):
            others = [u for u in s.scalars(select(User).where(User.id != user.id,
                                                              User.disabled_at.is_(None)))
                      if Capability.ADMIN in parse_capabilities(u.capabilities)]
            if not others:
                raise Conflict(f"user {name!r} is the last enabled admin; create another "
                               "admin first")
        user.disabled_at = now
        live = s.scalars(select(PlanRow).where(
            PlanRow.owner_id == user.id,
            PlanRow.state.in_([PlanState.QUEUED.value, PlanState.RUNNING.value]))).all()
        classes = sorted({p.sutclass_id for p in live})
        for plan in live:
            cancel_in_session(s, plan, now)
        ended, granted, lease_classes = cancel_user_leases(
            s, user.id, f"user {name} was disabled by {by.name}", settings, now)
        row = UserRow(id=user.id, name=user.name,
                      capabilities=parse_capabilities(user.capabilities),
                      created_at=user.created_at, disabled_at=user.disabled_at,
                      token_expires_at=user.token_expires_at)
        return Disabled(user=row, cancelled_plans=[p.id for p in live], ended_leases=ended,
                        granted_leases=granted,
                        sutclasses=sorted(set(classes) | set(lease_classes)))


def rotate_token(db: Database, name: str, now: float, token_ttl_s: float | None
                 ) -> tuple[UserRow, str]:
    """A new token for the user; the old one is refused from now on."""
    token = new_token()
    with db.write() as s:
        user = _by_name(s, name)
        if user.disabled_at is not None:
            raise Conflict(f"user {name!r} is disabled; its token cannot be rotated")
        s.execute(update(User).where(User.id == user.id).values(
            token_hash=hash_token(token), token_expires_at=_expiry(now, token_ttl_s)))
        s.refresh(user)
        return UserRow(id=user.id, name=user.name,
                       capabilities=parse_capabilities(user.capabilities),
                       created_at=user.created_at, disabled_at=user.disabled_at,
                       token_expires_at=user.token_expires_at), token
