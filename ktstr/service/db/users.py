"""User rows: creation, token lookup, the first-start admin."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ktstr.service.auth import (
    Capability,
    Principal,
    format_capabilities,
    hash_token,
    new_token,
    parse_capabilities,
)
from ktstr.service.db.engine import Database
from ktstr.service.db.tables import User
from ktstr.service.errors import Conflict, Unauthorized

ADMIN_NAME = "admin"


def principal_of(user: User) -> Principal:
    return Principal(id=user.id, name=user.name,
                     capabilities=parse_capabilities(user.capabilities))


def create_user(db: Database, name: str, caps: Iterable[Capability], now: float
                ) -> tuple[User, str]:
    """A new user and its token (the only time the token exists in clear)."""
    token = new_token()
    row = User(name=name, token_hash=hash_token(token),
               capabilities=format_capabilities(caps), created_at=now)
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


def authenticate(db: Database, token: str) -> Principal:
    with db.read() as s:
        user = s.scalar(select(User).where(User.token_hash == hash_token(token)))
    if user is None:
        raise Unauthorized("unknown token: check the token you saved with "
                           "`ktstr preference set --category sched --name token`")
    return principal_of(user)


def users_by_name(db: Database, names: Iterable[str]) -> dict[str, int]:
    with db.read() as s:
        rows = s.execute(select(User.name, User.id).where(User.name.in_(list(names))))
        return {row[0]: row[1] for row in rows}
