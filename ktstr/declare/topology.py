"""VM topology (NUMA nodes x LLCs x cores x threads) and topology constraints."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Self

from pydantic import Field, ValidationError, model_validator

from ktstr._problems import problem_lines
from ktstr.declare.base import Frozen
from ktstr.errors import UserError

_LABEL = re.compile(r"^(\d+)n(\d+)l(\d+)c(\d+)t$")
_TOPOLOGY_FORMS = (
    "use N,L,C,T (numa_nodes,llcs,cores_per_llc,threads_per_core) such as 1,2,2,1, "
    "or a label such as 1n2l2c1t"
)


def _split(text: str) -> list[int]:
    """``"1,2,2,1"`` or ``"1n2l2c1t"`` -> the four numbers; ``ValueError`` otherwise."""
    text = text.strip()
    m = _LABEL.match(text)
    parts = list(m.groups()) if m else [p.strip() for p in text.split(",")]
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a topology: {_TOPOLOGY_FORMS}")
    return [int(p) for p in parts]


class Topology(Frozen):
    """``numa_nodes`` nodes holding ``llcs`` last-level caches *in total*, each LLC with
    ``cores_per_llc`` cores of ``threads_per_core`` hardware threads.

    Wherever a ``Topology`` is expected, a 4-tuple ``(numa_nodes, llcs, cores_per_llc,
    threads_per_core)``, the string ``"N,L,C,T"`` or a label such as ``"1n2l4c1t"`` is
    accepted too.
    """

    _positional = ("numa_nodes", "llcs", "cores_per_llc", "threads_per_core")

    numa_nodes: int = Field(1, ge=1, le=64, description="NUMA nodes")
    llcs: int = Field(1, ge=1, le=256, description="last-level caches in total")
    cores_per_llc: int = Field(2, ge=1, le=256, description="cores in each LLC")
    threads_per_core: int = Field(1, ge=1, le=8, description="hardware threads per core")

    if TYPE_CHECKING:

        def __init__(
            self,
            numa_nodes: int = ...,
            llcs: int = ...,
            cores_per_llc: int = ...,
            threads_per_core: int = ...,
        ) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, value: Any) -> Any:
        if isinstance(value, str):
            return cls.positional_dict(_split(value), "a topology")
        if isinstance(value, tuple | list):
            return cls.positional_dict(value, "a topology")
        return value

    @model_validator(mode="after")
    def _llcs_divide_nodes(self) -> Self:
        if self.llcs % self.numa_nodes:
            raise ValueError(
                f"llcs ({self.llcs}) must be a multiple of numa_nodes ({self.numa_nodes}): "
                "every NUMA node holds the same number of LLCs"
            )
        return self

    @classmethod
    def parse(cls, text: str) -> Topology:
        """Parse ``N,L,C,T`` or a label such as ``1n2l4c1t``; ``UserError`` if bad."""
        return cls.coerce(text)

    @classmethod
    def coerce(cls, value: Topology | tuple[int, ...] | list[int] | str) -> Topology:
        """A ``Topology`` from any accepted form; ``UserError`` if bad."""
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            raise UserError(f"bad topology {value!r}: " + "; ".join(problem_lines(exc))) from exc

    @property
    def llcs_per_node(self) -> int:
        return self.llcs // self.numa_nodes

    @property
    def cpus_per_llc(self) -> int:
        return self.cores_per_llc * self.threads_per_core

    @property
    def total_cpus(self) -> int:
        return self.llcs * self.cpus_per_llc

    @property
    def cpus_per_node(self) -> int:
        return self.llcs_per_node * self.cpus_per_llc

    @property
    def has_smt(self) -> bool:
        return self.threads_per_core > 1

    @property
    def label(self) -> str:
        return f"{self.numa_nodes}n{self.llcs}l{self.cores_per_llc}c{self.threads_per_core}t"

    def cpu_id(self, llc: int, core: int, thread: int) -> int:
        """Linux CPU number of (global LLC index, core in LLC, thread), socket-major."""
        return (llc * self.cores_per_llc + core) * self.threads_per_core + thread

    def llc_cpus(self, llc: int) -> list[int]:
        first = llc * self.cpus_per_llc
        return list(range(first, first + self.cpus_per_llc))

    def node_cpus(self, node: int) -> list[int]:
        first = node * self.cpus_per_node
        return list(range(first, first + self.cpus_per_node))

    def with_overrides(
        self,
        *,
        numa_nodes: int | None = None,
        llcs: int | None = None,
        cores_per_llc: int | None = None,
        threads_per_core: int | None = None,
    ) -> Topology:
        """This topology with the given dimensions replaced (unset ones inherited);
        ``UserError`` if the result is not a valid topology."""
        update = {
            "numa_nodes": numa_nodes,
            "llcs": llcs,
            "cores_per_llc": cores_per_llc,
            "threads_per_core": threads_per_core,
        }
        fields = self.model_dump() | {k: v for k, v in update.items() if v is not None}
        try:
            return Topology(**fields)
        except ValidationError as exc:
            given = ", ".join(f"{k}={v}" for k, v in update.items() if v is not None)
            raise UserError(
                f"topology {self.label} with {given or 'no overrides'} is invalid: "
                + "; ".join(problem_lines(exc))
            ) from exc

    def __str__(self) -> str:
        return self.label


DEFAULT_TOPOLOGY = Topology(1, 1, 2, 1)

#: how many vCPUs we allow per host CPU before a topology is "too big for this host"
DEFAULT_VCPU_OVERCOMMIT = 16
#: guest memory per vCPU used by the memory rule (see ``vm_memory_mb``)
MEMORY_PER_CPU_MB = 64
#: 7.x kernels parse their BTF at boot; at 256 MiB a 7.3 guest panicked "System is
#: deadlocked on memory" (seen in the verifier sweep), so the floor is 1 GiB
MIN_VM_MEMORY_MB = 1024


def vm_memory_mb(topology: Topology, requested_mb: int | None = None) -> int:
    """Guest memory: ``max(cpus * 64 MiB, 1 GiB, requested)`` rounded up so that
    every NUMA node gets the same whole number of MiB."""
    mb = max(topology.total_cpus * MEMORY_PER_CPU_MB, MIN_VM_MEMORY_MB, requested_mb or 0)
    nodes = topology.numa_nodes
    return -(-mb // nodes) * nodes


class HostCapacity(Frozen):
    """What this host can hold; injected so that tests never depend on the real host."""

    cpus: int = Field(ge=1)
    memory_mb: int = Field(ge=1)
    vcpu_overcommit: int = Field(DEFAULT_VCPU_OVERCOMMIT, ge=1)

    @property
    def max_vcpus(self) -> int:
        return self.cpus * self.vcpu_overcommit

    @classmethod
    def detect(cls) -> HostCapacity:
        """The running host (``KTSTR_VCPU_OVERCOMMIT`` overrides the overcommit)."""
        cpus = len(os.sched_getaffinity(0))
        mem_kb = 0
        try:
            with open("/proc/meminfo", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        mem_kb = int(line.split()[1])
                        break
        except OSError:
            mem_kb = 1024 * 1024
        raw = os.environ.get("KTSTR_VCPU_OVERCOMMIT", str(DEFAULT_VCPU_OVERCOMMIT))
        if not raw.strip().isdigit() or int(raw) < 1:
            raise UserError(
                f"KTSTR_VCPU_OVERCOMMIT={raw!r} is invalid: use a whole number of vCPUs per "
                f"host CPU, at least 1 (default {DEFAULT_VCPU_OVERCOMMIT})"
            )
        over = int(raw)
        return cls(cpus=cpus, memory_mb=max(mem_kb // 1024, 1), vcpu_overcommit=over)


class Acceptance(Frozen):
    accepted: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.accepted


class TopologyConstraints(Frozen):
    """Which topologies a scheduler or test accepts (used by the gauntlet)."""

    min_llcs: int = Field(1, ge=1, description="fewest LLCs")
    max_llcs: int = Field(12, ge=1, description="most LLCs")
    min_cpus: int = Field(1, ge=1, description="fewest CPUs")
    max_cpus: int = Field(192, ge=1, description="most CPUs")
    min_numa_nodes: int = Field(1, ge=1, description="fewest NUMA nodes")
    max_numa_nodes: int = Field(1, ge=1, description="most NUMA nodes")
    requires_smt: bool = Field(False, description="only topologies with SMT siblings")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        for lo, hi in (
            ("min_llcs", "max_llcs"),
            ("min_cpus", "max_cpus"),
            ("min_numa_nodes", "max_numa_nodes"),
        ):
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(
                    f"{lo} ({getattr(self, lo)}) is greater than {hi} ({getattr(self, hi)})"
                )
        return self

    def accepts(self, topology: Topology, host: HostCapacity | None = None) -> Acceptance:
        """Whether ``topology`` satisfies these constraints and fits on ``host``."""
        t = topology
        checks = (
            (t.llcs >= self.min_llcs, f"{t.llcs} LLCs < min_llcs {self.min_llcs}"),
            (t.llcs <= self.max_llcs, f"{t.llcs} LLCs > max_llcs {self.max_llcs}"),
            (t.total_cpus >= self.min_cpus, f"{t.total_cpus} CPUs < min_cpus {self.min_cpus}"),
            (t.total_cpus <= self.max_cpus, f"{t.total_cpus} CPUs > max_cpus {self.max_cpus}"),
            (
                t.numa_nodes >= self.min_numa_nodes,
                f"{t.numa_nodes} NUMA nodes < min_numa_nodes {self.min_numa_nodes}",
            ),
            (
                t.numa_nodes <= self.max_numa_nodes,
                f"{t.numa_nodes} NUMA nodes > max_numa_nodes {self.max_numa_nodes}",
            ),
            (t.has_smt or not self.requires_smt, "requires_smt but the topology has no SMT"),
        )
        for ok, why in checks:
            if not ok:
                return Acceptance(accepted=False, reason=why)
        if host is not None:
            fits = host_fits(t, host)
            if not fits:
                return fits
        return Acceptance(accepted=True)


def host_fits(topology: Topology, host: HostCapacity) -> Acceptance:
    """Whether the host can hold a VM of this topology (vCPUs and memory)."""
    if topology.total_cpus > host.max_vcpus:
        return Acceptance(
            accepted=False,
            reason=(
                f"host cannot hold {topology.total_cpus} vCPUs: {host.cpus} host CPUs x "
                f"overcommit {host.vcpu_overcommit} = {host.max_vcpus} (KTSTR_VCPU_OVERCOMMIT)"
            ),
        )
    need = vm_memory_mb(topology)
    if need > host.memory_mb:
        return Acceptance(
            accepted=False,
            reason=f"host cannot hold {need} MiB of guest memory ({host.memory_mb} MiB available)",
        )
    return Acceptance(accepted=True)


DEFAULT_CONSTRAINTS = TopologyConstraints()
