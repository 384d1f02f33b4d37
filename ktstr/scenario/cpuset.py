"""``CpusetSpec``: which CPUs a cgroup (or a worker's affinity) gets, declared against
the topology rather than as numbers, and ``resolve_cpus`` that turns it into CPU ids.

- ``llc(i)`` — the CPUs of LLC ``i``; ``numa(i)`` — the CPUs of NUMA node ``i``.
- ``range(a, b)`` — the CPUs from fraction ``a`` to fraction ``b`` of all CPUs
  (``floor(a*n)`` up to ``floor(b*n)``, at least one CPU).
- ``disjoint(i, of)`` — part ``i`` of ``of`` contiguous, non-overlapping, nearly equal parts.
- ``overlap(i, of, frac)`` — part ``i`` of ``of`` parts, each extended past its end by
  ``frac`` of a part's width (the last part is extended before its start instead), so
  neighbouring parts share CPUs.
- ``exact(cpus)`` — these CPU ids.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from typing import Self

from pydantic import Field, model_validator

from ktstr.declare.base import Frozen
from ktstr.declare.topology import Topology
from ktstr.errors import UserError


class CpusetKind(enum.StrEnum):
    LLC = "llc"
    NUMA = "numa"
    RANGE = "range"
    DISJOINT = "disjoint"
    OVERLAP = "overlap"
    EXACT = "exact"


class CpusetSpec(Frozen):
    """A set of CPUs relative to the topology; build it with the class methods."""

    kind: CpusetKind = Field(description="llc, numa, range, disjoint, overlap or exact")
    index: int | None = Field(None, ge=0, description="LLC, node or part index")
    of: int | None = Field(None, ge=1, description="number of parts (disjoint, overlap)")
    start: float | None = Field(None, ge=0, le=1, description="range: first fraction")
    end: float | None = Field(None, ge=0, le=1, description="range: last fraction")
    frac: float | None = Field(None, ge=0, le=1, description="overlap: extension per part")
    cpus: tuple[int, ...] = Field((), description="exact: CPU ids")

    @model_validator(mode="after")
    def _shape(self) -> Self:
        k = self.kind
        if k in (CpusetKind.LLC, CpusetKind.NUMA) and self.index is None:
            raise ValueError(f"{k.value} needs an index")
        if k in (CpusetKind.DISJOINT, CpusetKind.OVERLAP):
            if self.index is None or self.of is None:
                raise ValueError(f"{k.value} needs index and of")
            if self.index >= self.of:
                raise ValueError(f"{k.value}: index {self.index} must be below of={self.of}")
        if k is CpusetKind.OVERLAP and self.frac is None:
            raise ValueError("overlap needs frac")
        if k is CpusetKind.RANGE and (self.start is None or self.end is None
                                      or self.start >= self.end):
            raise ValueError("range needs start < end, both fractions in [0, 1]")
        if k is CpusetKind.EXACT and (not self.cpus or any(c < 0 for c in self.cpus)):
            raise ValueError("exact needs at least one CPU id, none negative")
        return self

    @classmethod
    def llc(cls, index: int) -> CpusetSpec:
        return cls(kind=CpusetKind.LLC, index=index)

    @classmethod
    def numa(cls, index: int) -> CpusetSpec:
        return cls(kind=CpusetKind.NUMA, index=index)

    @classmethod
    def range(cls, start_frac: float, end_frac: float) -> CpusetSpec:
        return cls(kind=CpusetKind.RANGE, start=start_frac, end=end_frac)

    @classmethod
    def disjoint(cls, index: int, of: int) -> CpusetSpec:
        return cls(kind=CpusetKind.DISJOINT, index=index, of=of)

    @classmethod
    def overlap(cls, index: int, of: int, frac: float) -> CpusetSpec:
        return cls(kind=CpusetKind.OVERLAP, index=index, of=of, frac=frac)

    @classmethod
    def exact(cls, cpus: Iterable[int]) -> CpusetSpec:
        return cls(kind=CpusetKind.EXACT, cpus=tuple(sorted(set(cpus))))

    def describe(self) -> str:
        k = self.kind
        if k in (CpusetKind.LLC, CpusetKind.NUMA):
            return f"{k.value}({self.index})"
        if k is CpusetKind.RANGE:
            return f"range({self.start:g}, {self.end:g})"
        if k is CpusetKind.DISJOINT:
            return f"disjoint({self.index}, {self.of})"
        if k is CpusetKind.OVERLAP:
            return f"overlap({self.index}, {self.of}, {self.frac:g})"
        return f"exact({cpulist(self.cpus)})"


def resolve_cpus(spec: CpusetSpec, topology: Topology) -> tuple[int, ...]:
    """The CPU ids ``spec`` means on ``topology`` (pure); ``UserError`` if it cannot."""
    n = topology.total_cpus
    k = spec.kind
    if k is CpusetKind.LLC:
        assert spec.index is not None
        if spec.index >= topology.llcs:
            raise UserError(f"cpuset {spec.describe()}: topology {topology.label} has "
                            f"{topology.llcs} LLC(s), use an index below {topology.llcs}")
        return tuple(topology.llc_cpus(spec.index))
    if k is CpusetKind.NUMA:
        assert spec.index is not None
        if spec.index >= topology.numa_nodes:
            raise UserError(f"cpuset {spec.describe()}: topology {topology.label} has "
                            f"{topology.numa_nodes} NUMA node(s), use an index below "
                            f"{topology.numa_nodes}")
        return tuple(topology.node_cpus(spec.index))
    if k is CpusetKind.RANGE:
        assert spec.start is not None and spec.end is not None
        first = min(math.floor(spec.start * n), n - 1)
        last = max(math.floor(spec.end * n), first + 1)
        return tuple(range(first, min(last, n)))
    if k in (CpusetKind.DISJOINT, CpusetKind.OVERLAP):
        assert spec.index is not None and spec.of is not None
        if spec.of > n:
            raise UserError(f"cpuset {spec.describe()}: cannot split {n} CPUs of "
                            f"{topology.label} into {spec.of} parts; use of <= {n}")
        width = n / spec.of
        first = round(spec.index * width)
        last = round((spec.index + 1) * width)
        if k is CpusetKind.OVERLAP:
            assert spec.frac is not None
            extra = max(1, round(spec.frac * width)) if spec.frac > 0 else 0
            if spec.index == spec.of - 1:
                first = max(0, first - extra)
            else:
                last = min(n, last + extra)
        return tuple(range(first, last))
    bad = [c for c in spec.cpus if c >= n]
    if bad:
        raise UserError(f"cpuset {spec.describe()}: CPU(s) {cpulist(bad)} do not exist on "
                        f"{topology.label} (CPUs 0-{n - 1})")
    return spec.cpus


def cpulist(cpus: Sequence[int] | Iterable[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"`` (the kernel's cpulist format); ``""`` if empty."""
    ids = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)


def parse_cpulist(text: str) -> tuple[int, ...]:
    """``"0-2,5"`` -> ``(0, 1, 2, 5)``; ``ValueError`` on anything else."""
    out: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if b < a:
            raise ValueError(f"bad cpulist range {part!r}")
        out.update(range(a, b + 1))
    return tuple(sorted(out))
