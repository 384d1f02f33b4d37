"""The one provider interface: ``kickoff(job) -> handle``, ``status(handle)``,
``cancel(handle)``, ``available()``, ``inventory()``.

A provider runs a job's command somewhere (a pull agent, a host over SSH, a Slurm
allocation) and reports its progress in ``ProviderState`` terms; the service maps those
onto job states. Failures to talk to the backend raise ``ProviderError`` with the cause.
"""

from __future__ import annotations

import enum
from typing import Protocol

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.errors import InfraError


class ProviderError(InfraError):
    """The backend (ssh, Slurm, the agents) could not do what was asked."""


class ProviderState(enum.StrEnum):
    PENDING = "pending"  # accepted, not started (Slurm queue)
    RUNNING = "running"
    COMPLETED = "completed"  # the command exited 0
    FAILED = "failed"  # non-zero exit, node failure, killed outside ktstr
    CANCELLED = "cancelled"  # ended through ``cancel``

    @property
    def final(self) -> bool:
        return self in (ProviderState.COMPLETED, ProviderState.FAILED, ProviderState.CANCELLED)


class ProviderJob(Frozen):
    """What to run: the command of one claimed job (``ktstr run ...`` on the SUT)."""

    job_id: int
    attempt: int = 1
    argv: list[str] = Field(min_length=1)
    timeout_s: float = Field(3600.0, gt=0)


class Handle(Frozen):
    """A serialisable reference to a started job."""

    provider: str
    ref: str  # Slurm job id, ssh session key, worker name
    sut: str | None = None


class ProviderStatus(Frozen):
    state: ProviderState
    reason: str | None = None
    exit_code: int | None = None


class NodeInfo(Frozen):
    name: str
    up: bool
    allocated: bool = False
    cpus: int | None = None
    memory_mb: int | None = None
    groups: list[str] = Field(default_factory=list)  # partitions, SUT class


class SutProvider(Protocol):
    name: str

    def kickoff(self, job: ProviderJob) -> Handle: ...

    def status(self, handle: Handle) -> ProviderStatus: ...

    def cancel(self, handle: Handle) -> None: ...

    def available(self) -> bool: ...

    def inventory(self) -> list[NodeInfo]: ...
