"""Leases: wire schemas and the pure rule deciding who gets a free SUT.

The rule: queued jobs and queued leases of a SUT class form one queue ordered by
priority (higher first), then age (older first; a lease goes before a job of the same
priority and age). Free SUTs go down that queue in order: a job ahead of a lease keeps
one free SUT for itself that a worker (or the service's dispatcher) serves, since only
such a SUT will ever run it; a lease takes one, preferring a SUT no job could use.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.service.states import LeaseState


class LeaseAcquire(Frozen):
    sutclass: str = Field(min_length=1, max_length=200)
    priority: int = Field(0, ge=0, le=100, description="higher is served first")


class LeaseOut(Frozen):
    id: int
    owner: str
    sutclass: str
    state: LeaseState
    priority: int
    sut: str | None = Field(description="the SUT, once acquired")
    connection: dict[str, object] | None = Field(description="how to reach the SUT")
    requested_at: datetime
    acquired_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None
    reason: str | None


class Kind(enum.IntEnum):
    LEASE = 0  # sorts first among equals
    JOB = 1


class Waiting(Frozen):
    """A queued lease or job competing for a SUT."""

    kind: Kind
    id: int
    priority: int
    since: float


def queue_order(item: Waiting) -> tuple[int, float, int, int]:
    return (-item.priority, item.since, item.kind.value, item.id)


def first_in_line(items: Sequence[Waiting]) -> Waiting | None:
    return min(items, key=queue_order, default=None)


class FreeSut(Frozen):
    """A SUT that no job and no lease holds."""

    id: int
    runs_jobs: bool = Field(description="an online worker (or the dispatcher) serves it")


def allocate(free_suts: Sequence[FreeSut], waiting: Sequence[Waiting]) -> dict[int, int]:
    """Lease id -> SUT id for the queued leases that get a free SUT now (pure)."""
    free = list(free_suts)
    out: dict[int, int] = {}
    for item in sorted(waiting, key=queue_order):
        if not free:
            break
        if item.kind is Kind.JOB:
            runnable = next((i for i, f in enumerate(free) if f.runs_jobs), None)
            if runnable is not None:  # kept for the job; none: it holds nothing back
                free.pop(runnable)
            continue
        spare = next((i for i, f in enumerate(free) if not f.runs_jobs), 0)
        out[item.id] = free.pop(spare).id
    return out
