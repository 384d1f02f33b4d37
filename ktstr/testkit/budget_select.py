"""Gauntlet budget mode: pick the variants that cover the most distinct configurations
per second of estimated cost (pure, greedy)."""

from __future__ import annotations

from collections.abc import Sequence

from ktstr.declare.base import Frozen
from ktstr.declare.topology import Topology

#: estimated seconds for one TCG VM: start + boot, per vCPU, plus the test's duration
BASE_COST_S = 12.0
PER_VCPU_S = 0.8


class Candidate(Frozen):
    nodeid: str
    scheduler: str
    flags: str
    kernel: str
    topology: Topology
    duration_s: float


def cpu_bucket(n: int) -> str:
    for limit in (4, 16, 64, 128):
        if n <= limit:
            return f"cpus<={limit}"
    return "cpus>128"


def llc_bucket(n: int) -> str:
    return "llc=1" if n == 1 else "llc<=4" if n <= 4 else "llc<=8" if n <= 8 else "llc>8"


def features(c: Candidate) -> set[str]:
    t = c.topology
    return {
        f"sched={c.scheduler}", f"flags={c.scheduler}:{c.flags}", f"kernel={c.kernel}",
        cpu_bucket(t.total_cpus), llc_bucket(t.llcs), f"numa={t.numa_nodes}",
        f"smt={'yes' if t.has_smt else 'no'}",
    }


def cost(c: Candidate) -> float:
    return BASE_COST_S + PER_VCPU_S * c.topology.total_cpus + c.duration_s


def select(candidates: Sequence[Candidate], budget_s: float) -> tuple[list[Candidate], set[str]]:
    """Greedy: repeatedly take the candidate with the most *new* features per second
    that still fits the budget. Returns the picks and the features they cover."""
    covered: set[str] = set()
    picked: list[Candidate] = []
    left = list(candidates)
    spent = 0.0
    while left:
        best = max(left, key=lambda c: (len(features(c) - covered) / cost(c), -cost(c)))
        gain = features(best) - covered
        if not gain or spent + cost(best) > budget_s:
            fitting = [c for c in left if spent + cost(c) <= budget_s and features(c) - covered]
            if not fitting:
                break
            best = max(fitting, key=lambda c: len(features(c) - covered) / cost(c))
            gain = features(best) - covered
        picked.append(best)
        covered |= gain
        spent += cost(best)
        left.remove(best)
    return picked, covered
