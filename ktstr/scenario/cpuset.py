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
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from ktstr.declare.topology import Topology
from ktstr.declare.union import TaggedUnion, Variant
from ktstr.errors import UserError


class CpusetKind(enum.StrEnum):
    LLC = "llc"
    NUMA = "numa"
    RANGE = "range"
    DISJOINT = "disjoint"
    OVERLAP = "overlap"
    EXACT = "exact"


class CpusetSpec(TaggedUnion):
    """A set of CPUs relative to the topology; build it with the class methods."""

    usage = ("CpusetSpec.llc(i), numa(i), range(start_frac, end_frac), disjoint(index, of), "
             "overlap(index, of, frac) or exact(cpus)")

    kind: CpusetKind

    @classmethod
    def llc(cls, index: int) -> LlcCpuset:
        return LlcCpuset(index=index)

    @classmethod
    def numa(cls, index: int) -> NumaCpuset:
        return NumaCpuset(index=index)

    @classmethod
    def range(cls, start_frac: float, end_frac: float) -> RangeCpuset:
        return RangeCpuset(start=start_frac, end=end_frac)

    @classmethod
    def disjoint(cls, index: int, of: int) -> DisjointCpuset:
        return DisjointCpuset(index=index, of=of)

    @classmethod
    def overlap(cls, index: int, of: int, frac: float) -> OverlapCpuset:
        return OverlapCpuset(index=index, of=of, frac=frac)

    @classmethod
    def exact(cls, cpus: Iterable[int]) -> ExactCpuset:
        return ExactCpuset(cpus=tuple(sorted(set(cpus))))

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def cpus_on(self, topology: Topology) -> tuple[int, ...]:
        """The CPU ids this set means on ``topology``; ``UserError`` if it cannot."""



def _unfit(spec: CpusetSpec, rule: str) -> UserError:
    """The set cannot be made on this topology."""
    return UserError(f"cpuset {spec.describe()}: {rule}")


class LlcCpuset(Variant, CpusetSpec):
    """``CpusetSpec.llc(i)``: the CPUs of LLC ``i``."""

    needs = {"index": "llc needs an index"}

    kind: Literal[CpusetKind.LLC] = Field(CpusetKind.LLC, description="this form's tag")
    index: int = Field(ge=0, description="LLC index")

    def describe(self) -> str:
        return f"llc({self.index})"

    def cpus_on(self, topology: Topology) -> tuple[int, ...]:
        if self.index >= topology.llcs:
            raise _unfit(self, f"topology {topology.label} has {topology.llcs} LLC(s), use an "
                               f"index below {topology.llcs}")
        return tuple(topology.llc_cpus(self.index))


class NumaCpuset(Variant, CpusetSpec):
    """``CpusetSpec.numa(i)``: the CPUs of NUMA node ``i``."""

    needs = {"index": "numa needs an index"}

    kind: Literal[CpusetKind.NUMA] = Field(CpusetKind.NUMA, description="this form's tag")
    index: int = Field(ge=0, description="NUMA node index")

    def describe(self) -> str:
        return f"numa({self.index})"

    def cpus_on(self, topology: Topology) -> tuple[int, ...]:
        if self.index >= topology.numa_nodes:
            raise _unfit(self, f"topology {topology.label} has {topology.numa_nodes} NUMA "
                               f"node(s), use an index below {topology.numa_nodes}")
        return tuple(topology.node_cpus(self.index))


_RANGE_RULE = "range needs start < end, both fractions in [0, 1]"


class RangeCpuset(Variant, CpusetSpec):
    """``CpusetSpec.range(start_frac, end_frac)``: the CPUs from fraction ``start`` to
    fraction ``end`` of all CPUs (at least one CPU)."""

    needs = {"start": _RANGE_RULE, "end": _RANGE_RULE}

    kind: Literal[CpusetKind.RANGE] = Field(CpusetKind.RANGE, description="this form's tag")
    start: float = Field(ge=0, le=1, description="first fraction")
    end: float = Field(ge=0, le=1, description="last fraction, above start")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start >= self.end:
            raise ValueError(_RANGE_RULE)
        return self

    def describe(self) -> str:
        return f"range({self.start:g}, {self.end:g})"

    def cpus_on(self, topology: Topology) -> tuple[int, ...]:
        n = topology.total_cpus
        first = min(math.floor(self.start * n), n - 1)
        last = max(math.floor(self.end * n), first + 1)
        return tuple(range(first, min(last, n)))


def _below_of(kind: CpusetKind, index: int, of: int) -> None:
    if index >= of:
        raise ValueError(f"{kind.value}: index {index} must be below of={of}")


def _part(spec: DisjointCpuset | OverlapCpuset, topology: Topology) -> tuple[int, int, float]:
    """``(first, last, width)`` of part ``index`` of ``of`` (last excluded)."""
    n = topology.total_cpus
    if spec.of > n:
        raise _unfit(spec, f"cannot split {n} CPUs of {topology.label} into {spec.of} "
                           f"parts; use of <= {n}")
    width = n / spec.of
    return round(spec.index * width), round((spec.index + 1) * width), width


class DisjointCpuset(Variant, CpusetSpec):
    """``CpusetSpec.disjoint(index, of)``: part ``index`` of ``of`` contiguous,
    non-overlapping, nearly equal parts."""

    needs = {"index": "disjoint needs index and of", "of": "disjoint needs index and of"}

    kind: Literal[CpusetKind.DISJOINT] = Field(CpusetKind.DISJOINT,
                                               description="this form's tag")
    index: int = Field(ge=0, description="part index, below of")
    of: int = Field(ge=1, description="number of parts")

    @model_validator(mode="after")
    def _index_below_of(self) -> Self:
        _below_of(self.kind, self.index, self.of)
        return self

    def describe(self) -> str:
        return f"disjoint({self.index}, {self.of})"

    def cpus_on(self, topology: Topology) -> tuple[int, ...]:
        first, last, _ = _part(self, topology)
        return tuple(range(first, last))


class OverlapCpuset(Variant, CpusetSpec):
    """``CpusetSpec.overlap(index, of, frac)``: part ``index`` of ``of`` parts, extended
    past its end by ``frac`` of a part's width (the last part before its start instead),
    so neighbouring parts share CPUs."""

    needs = {"index": "overlap needs index and of", "of": "overlap needs index and of",
             "frac": "overlap needs frac"}

    kind: Literal[CpusetKind.OVERLAP] = Field(CpusetKind.OVERLAP,
                                              description="this form's tag")
    index: int = Field(ge=0, description="part index, below of")
    of: int = Field(ge=1, description="number of parts")
    frac: float = Field(ge=0, le=1, description="extension per part, a fraction of its width")

    @model_validator(mode="after")
    def _index_below_of(self) -> Self:
        _below_of(self.kind, self.index, self.of)
        return self

    def describe(self) -> str:
        return f"overlap({self.index}, {self.of}, {self.frac:g})"

    def cpus_on(self, topology: Topology) -> tuple[int, ...]:
        first, last, width = _part(self, topology)
        extra = max(1, round(self.frac * width)) if self.frac > 0 else 0
        if self.index == self.of - 1:
            first = max(0, first - extra)
        else:
            last = min(topology.total_cpus, last + extra)
        return tuple(range(first, last))


_EXACT_RULE = "exact needs at least one CPU id, none negative"


class ExactCpuset(Variant, CpusetSpec):
    """``CpusetSpec.exact(cpus)``: these CPU ids."""

    needs = {"cpus": _EXACT_RULE}

    kind: Literal[CpusetKind.EXACT] = Field(CpusetKind.EXACT, description="this form's tag")
    cpus: tuple[int, ...] = Field(description="CPU ids")

    @field_validator("cpus")
    @classmethod
    def _some_cpus(cls, cpus: tuple[int, ...]) -> tuple[int, ...]:
        if not cpus or any(c < 0 for c in cpus):
            raise ValueError(_EXACT_RULE)
        return cpus

    def describe(self) -> str:
        return f"exact({cpulist(self.cpus)})"

    def cpus_on(self, topology: Topology) -> tuple[int, ...]:
        n = topology.total_cpus
        bad = [c for c in self.cpus if c >= n]
        if bad:
            raise _unfit(self, f"CPU(s) {cpulist(bad)} do not exist on {topology.label} "
                               f"(CPUs 0-{n - 1})")
        return self.cpus


CpusetSpec.variants = (LlcCpuset, NumaCpuset, RangeCpuset, DisjointCpuset, OverlapCpuset,
                       ExactCpuset)


def resolve_cpus(spec: CpusetSpec, topology: Topology) -> tuple[int, ...]:
    """The CPU ids ``spec`` means on ``topology`` (pure); ``UserError`` if it cannot."""
    return spec.cpus_on(topology)


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
