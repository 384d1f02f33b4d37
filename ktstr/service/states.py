"""Lifecycle states of jobs, plans and workers, with their allowed transitions.

A job's *state* says where it is in its life; its *outcome* (the cell's verdict) is kept
apart and only set once the job has run. ``require_transition`` is the one guard every
state change goes through; it raises an error naming the actual and the allowed states.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from ktstr.errors import UserError


class InvalidTransition(UserError):
    """A state change that the transition table does not allow."""

    def __init__(self, what: str, actual: enum.Enum, wanted: enum.Enum,
                 allowed_from: frozenset[enum.Enum]) -> None:
        self.what = what
        self.actual = actual
        self.wanted = wanted
        self.allowed_from = allowed_from
        need = ", ".join(sorted(s.value for s in allowed_from)) or "(no state)"
        super().__init__(
            f"{what} is {actual.value}; moving to {wanted.value} needs it to be one of: {need}"
        )


class JobState(enum.StrEnum):
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_JOB_STATES

    @property
    def active(self) -> bool:
        """Held by a worker."""
        return self in (JobState.ASSIGNED, JobState.RUNNING)


TERMINAL_JOB_STATES = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELLED}
)

#: state -> states it may move to. ``assigned/running -> queued`` requeues a job whose
#: worker was lost (``-> failed`` once it ran out of tries, ``-> cancelled`` when its plan
#: was cancelled meanwhile); ``queued -> completed|failed`` accepts the late result of a
#: requeued job that no other worker has claimed yet.
JOB_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.ASSIGNED, JobState.CANCELLED, JobState.FAILED,
                                JobState.COMPLETED}),
    JobState.ASSIGNED: frozenset({JobState.RUNNING, JobState.QUEUED, JobState.COMPLETED,
                                  JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.COMPLETED, JobState.FAILED, JobState.TIMED_OUT,
                                 JobState.QUEUED, JobState.CANCELLED}),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.TIMED_OUT: frozenset(),
    JobState.CANCELLED: frozenset(),
}


class PlanState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (PlanState.COMPLETED, PlanState.CANCELLED)


PLAN_TRANSITIONS: Mapping[PlanState, frozenset[PlanState]] = {
    PlanState.QUEUED: frozenset({PlanState.RUNNING, PlanState.CANCELLED, PlanState.COMPLETED}),
    PlanState.RUNNING: frozenset({PlanState.COMPLETED, PlanState.CANCELLED}),
    PlanState.COMPLETED: frozenset(),
    PlanState.CANCELLED: frozenset(),
}


class WorkerState(enum.StrEnum):
    """``online`` while it heartbeats; ``offline`` once it said goodbye (a clean stop);
    ``lost`` when the reaper heard nothing from it for the heartbeat timeout."""

    ONLINE = "online"
    OFFLINE = "offline"
    LOST = "lost"


#: the state of a new worker row (its first registration)
WORKER_INITIAL = WorkerState.ONLINE

#: state -> states it may move to. ``WorkerRow`` checks every assignment of its state
#: against this table; an UPDATE of many rows (the reaper marking silent workers lost)
#: restricts its WHERE to ``sources(WORKER_TRANSITIONS, wanted)``.
WORKER_TRANSITIONS: Mapping[WorkerState, frozenset[WorkerState]] = {
    WorkerState.ONLINE: frozenset({WorkerState.LOST, WorkerState.ONLINE,
                                   WorkerState.OFFLINE}),
    WorkerState.OFFLINE: frozenset({WorkerState.ONLINE}),
    WorkerState.LOST: frozenset({WorkerState.ONLINE, WorkerState.OFFLINE}),
}


def _sources(table: Mapping[enum.Enum, frozenset[enum.Enum]],
             wanted: enum.Enum) -> frozenset[enum.Enum]:
    return frozenset(s for s, targets in table.items() if wanted in targets)


def can_move(actual: JobState, wanted: JobState) -> bool:
    return wanted in JOB_TRANSITIONS[actual]


def require_job_transition(what: str, actual: JobState, wanted: JobState) -> None:
    if wanted not in JOB_TRANSITIONS[actual]:
        raise InvalidTransition(what, actual, wanted, _sources(JOB_TRANSITIONS, wanted))  # type: ignore[arg-type]


def sources(table: Mapping[Any, frozenset[Any]], wanted: enum.Enum) -> list[str]:
    """The values of the states that may move to ``wanted``, for a row-level guard
    (``UPDATE ... WHERE state IN (...)``) that applies the table inside one statement."""
    return sorted(str(s.value) for s in _sources(table, wanted))


def require_worker_transition(what: str, actual: WorkerState, wanted: WorkerState) -> None:
    if wanted not in WORKER_TRANSITIONS[actual]:
        raise InvalidTransition(what, actual, wanted, _sources(WORKER_TRANSITIONS, wanted))  # type: ignore[arg-type]


def require_worker_start(what: str, wanted: WorkerState) -> None:
    """A new worker row starts in ``WORKER_INITIAL`` and nowhere else."""
    if wanted is not WORKER_INITIAL:
        raise ValueError(f"{what} is new: it starts {WORKER_INITIAL.value}, not {wanted.value}")


def require_plan_transition(what: str, actual: PlanState, wanted: PlanState) -> None:
    if wanted not in PLAN_TRANSITIONS[actual]:
        raise InvalidTransition(what, actual, wanted, _sources(PLAN_TRANSITIONS, wanted))  # type: ignore[arg-type]


def plan_state_for(jobs: Mapping[JobState, int], cancelled: bool) -> PlanState:
    """A plan's state from its jobs' state counts (pure). A cancelled plan reads
    cancelled at once, even while its running jobs finish."""
    if cancelled:
        return PlanState.CANCELLED
    total = sum(jobs.values())
    done = sum(n for s, n in jobs.items() if s.terminal)
    if total and done == total:
        return PlanState.COMPLETED
    started = sum(n for s, n in jobs.items() if s is not JobState.QUEUED)
    return PlanState.RUNNING if started else PlanState.QUEUED


class LeaseState(enum.StrEnum):
    """A manual lease of one SUT: queued until a SUT is free for it, then acquired until
    its holder releases it or it runs out (``expired``); ``cancelled`` if released while
    still queued."""

    QUEUED = "queued"
    ACQUIRED = "acquired"
    RELEASED = "released"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return not LEASE_TRANSITIONS[self]


LEASE_TRANSITIONS: Mapping[LeaseState, frozenset[LeaseState]] = {
    LeaseState.QUEUED: frozenset({LeaseState.ACQUIRED, LeaseState.CANCELLED}),
    LeaseState.ACQUIRED: frozenset({LeaseState.RELEASED, LeaseState.EXPIRED}),
    LeaseState.RELEASED: frozenset(),
    LeaseState.EXPIRED: frozenset(),
    LeaseState.CANCELLED: frozenset(),
}


def require_lease_transition(what: str, actual: LeaseState, wanted: LeaseState) -> None:
    if wanted not in LEASE_TRANSITIONS[actual]:
        raise InvalidTransition(what, actual, wanted, _sources(LEASE_TRANSITIONS, wanted))  # type: ignore[arg-type]
