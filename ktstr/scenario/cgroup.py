"""``CgroupDef``: one cgroup of workers, declared as data.

Keyword and fluent forms build the same frozen value::

    CgroupDef("cg_0", workers=2, work_type=WorkType.CPU_SPIN)
    CgroupDef("cg_0").workers(2).work_type(WorkType.CPU_SPIN)   # each call returns a copy

The fluent methods take the keywords' names, so the fields that hold the values are
named for what they hold (``num_workers``, ``cpuset_spec``, ...); each keyword is the
field's alias, used by ``model_dump(by_alias=True)`` and JSON.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Self

from pydantic import Field, field_validator, model_validator

from ktstr.declare.base import Frozen, check_name
from ktstr.scenario.cpuset import CpusetSpec


class WorkType(enum.StrEnum):
    """What each worker process does in a loop of *work units* (see docs/scenarios.md)."""

    CPU_SPIN = "cpu_spin"  # pure computation
    YIELD_HEAVY = "yield_heavy"  # a little computation, then sched_yield()
    MIXED = "mixed"  # computation with a 0.5 ms sleep every 10th unit
    IO_SYNC = "io_sync"  # 4 KiB pwrite + fdatasync + 0.1 ms sleep
    BURSTY = "bursty"  # bursts of 50 units, 5 ms sleep between bursts
    PIPE_IO = "pipe_io"  # ping-pong through pipes with a partner process
    FUTEX_PING_PONG = "futex_ping_pong"  # ping-pong on a shared futex with a partner
    FORK_EXIT = "fork_exit"  # fork a child that exits at once, reap it
    NICE_SWEEP = "nice_sweep"  # computation while cycling its own nice value

    @property
    def has_wakeups(self) -> bool:
        """Whether the worker records wake-up latency samples."""
        return self in (WorkType.MIXED, WorkType.IO_SYNC, WorkType.BURSTY, WorkType.PIPE_IO,
                        WorkType.FUTEX_PING_PONG)


class SchedPolicy(enum.StrEnum):
    NORMAL = "normal"  # SCHED_OTHER
    BATCH = "batch"  # SCHED_BATCH
    IDLE = "idle"  # SCHED_IDLE
    FIFO = "fifo"  # SCHED_FIFO (needs a priority 1..99)
    RR = "rr"  # SCHED_RR (needs a priority 1..99)

    @property
    def realtime(self) -> bool:
        return self in (SchedPolicy.FIFO, SchedPolicy.RR)


class CgroupDef(Frozen):
    """A cgroup, its workers and where they may run."""

    _positional = ("name",)

    name: str = Field(description="cgroup name below the scenario root (letters, digits, _.-)")
    num_workers: int | None = Field(
        None, alias="workers", ge=0, le=512,
        description="worker processes; None: the run's default (RunRequest.workers or 2)",
    )
    work_kind: WorkType = Field(WorkType.CPU_SPIN, alias="work_type",
                                description="what each worker does")
    cpuset_spec: CpusetSpec | None = Field(None, alias="cpuset",
                                           description="cpuset.cpus of the cgroup; None: all")
    policy: SchedPolicy = Field(SchedPolicy.NORMAL, alias="sched_policy",
                                description="scheduling policy of the workers")
    priority: int = Field(0, ge=0, le=99, description="real-time priority (fifo, rr: 1..99)")
    nice_value: int = Field(0, alias="nice", ge=-20, le=19,
                            description="nice value of the workers")
    affinity_spec: CpusetSpec | None = Field(
        None, alias="affinity", description="CPU affinity of each worker; None: unrestricted"
    )
    subgroups: tuple[CgroupDef, ...] = Field(
        (), alias="children", description="nested cgroups (their workers run in them)"
    )

    if TYPE_CHECKING:

        def __init__(
            self,
            name: str,
            *,
            workers: int | None = ...,
            work_type: WorkType = ...,
            cpuset: CpusetSpec | None = ...,
            sched_policy: SchedPolicy = ...,
            priority: int = ...,
            nice: int = ...,
            affinity: CpusetSpec | None = ...,
            children: tuple[CgroupDef, ...] | list[CgroupDef] = ...,
        ) -> None: ...

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return check_name(name, "cgroup")

    @field_validator("subgroups", mode="before")
    @classmethod
    def _children_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if self.policy.realtime and not 1 <= self.priority <= 99:
            raise ValueError(f"sched_policy {self.policy.value} needs a priority "
                             "1..99: CgroupDef(..., priority=N) or .sched_policy(p, N)")
        if not self.policy.realtime and self.priority:
            raise ValueError(f"priority is only for fifo and rr, not {self.policy.value}")
        if self.subgroups and self.num_workers:
            raise ValueError(f"cgroup {self.name!r} has children, so it cannot hold workers "
                             "itself (cgroup v2 no-internal-process rule): put them in a child")
        names = [c.name for c in self.subgroups]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"cgroup {self.name!r}: child names repeat: {', '.join(sorted(dup))}")
        return self

    # --- fluent forms: each returns a new frozen copy ------------------------------
    def _with(self, **update: Any) -> CgroupDef:
        """A validated copy with ``update`` (by field name) applied."""
        return CgroupDef.model_validate({**dict(self), **update})

    def workers(self, count: int) -> CgroupDef:
        return self._with(num_workers=count)

    def work_type(self, work_type: WorkType | str) -> CgroupDef:
        return self._with(work_kind=work_type)

    def cpuset(self, spec: CpusetSpec | None) -> CgroupDef:
        return self._with(cpuset_spec=spec)

    def sched_policy(self, policy: SchedPolicy | str, priority: int = 0) -> CgroupDef:
        return self._with(policy=policy, priority=priority)

    def nice(self, value: int) -> CgroupDef:
        return self._with(nice_value=value)

    def affinity(self, spec: CpusetSpec | None) -> CgroupDef:
        return self._with(affinity_spec=spec)

    def children(self, *defs: CgroupDef) -> CgroupDef:
        return self._with(subgroups=tuple(defs))

    # --- reading ----------------------------------------------------------------------
    def worker_count(self, default: int) -> int:
        if self.num_workers is not None:
            return self.num_workers
        return 0 if self.subgroups else default

    def describe(self) -> str:
        parts = [self.name, f"{self.num_workers if self.num_workers is not None else '*'}x"
                 f"{self.work_kind.value}"]
        if self.cpuset_spec:
            parts.append(f"cpuset={self.cpuset_spec.describe()}")
        if self.policy is not SchedPolicy.NORMAL:
            parts.append(f"policy={self.policy.value}"
                         + (f"/{self.priority}" if self.priority else ""))
        if self.nice_value:
            parts.append(f"nice={self.nice_value}")
        if self.affinity_spec:
            parts.append(f"affinity={self.affinity_spec.describe()}")
        if self.subgroups:
            parts.append("children=[" + "; ".join(c.describe() for c in self.subgroups) + "]")
        return " ".join(parts)
