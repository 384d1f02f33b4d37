"""Users, tokens and capabilities.

Tokens are 256 random bits shown once; the database keeps only their SHA-256 (a fast
hash is enough for random tokens: there is nothing to brute-force from a dictionary).
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Iterable

from ktstr.declare.base import Frozen
from ktstr.errors import UserError
from ktstr.service.errors import Forbidden


class Capability(enum.StrEnum):
    EXEC = "exec"  # submit and modify own plans
    QUERY = "query"  # read state
    LEASE = "lease"  # hold SUTs: leases, and running as a worker
    ADMIN = "admin"  # everything, bypasses ownership


def parse_capabilities(text: str | Iterable[str]) -> frozenset[Capability]:
    items = [p.strip().lower() for p in (text.split(",") if isinstance(text, str) else text)]
    caps: set[Capability] = set()
    for item in filter(None, items):
        try:
            caps.add(Capability(item))
        except ValueError:
            known = ", ".join(c.value for c in Capability)
            raise UserError(f"unknown capability {item!r}; known capabilities: {known}") \
                from None
    if not caps:
        raise UserError("give at least one capability: " +
                        ", ".join(c.value for c in Capability))
    return frozenset(caps)


def format_capabilities(caps: Iterable[Capability]) -> str:
    order = list(Capability)
    return ",".join(c.value for c in sorted(set(caps), key=order.index))


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Principal(Frozen):
    """The authenticated caller."""

    id: int
    name: str
    capabilities: frozenset[Capability]
    #: when the caller's token stops being accepted (None: never)
    token_expires_at: float | None = None

    @property
    def is_admin(self) -> bool:
        return Capability.ADMIN in self.capabilities

    def require(self, cap: Capability) -> None:
        if cap not in self.capabilities and not self.is_admin:
            have = format_capabilities(self.capabilities)
            raise Forbidden(f"user {self.name!r} lacks the {cap.value!r} capability "
                            f"(has: {have})")

    def require_any(self, *caps: Capability) -> None:
        """One of ``caps`` (or admin)."""
        if self.is_admin or self.capabilities & set(caps):
            return
        have = format_capabilities(self.capabilities)
        need = " or ".join(repr(c.value) for c in caps)
        raise Forbidden(f"user {self.name!r} needs the {need} capability (has: {have})")

    def require_owner(self, owner_id: int, what: str) -> None:
        if owner_id != self.id and not self.is_admin:
            raise Forbidden(f"{what} belongs to another user; only its owner or an admin "
                            "may change it")
