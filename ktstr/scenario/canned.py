"""Canned scenarios, by name (``ktstr list scenarios``, ``ktstr run --scenario NAME``).

Each is built for the run's topology (worker counts follow the CPU count). This is a
fixed table of ktstr's own scenarios, not a registry: user scenarios are ordinary
``Scenario`` values passed to ``RunRequest(scenario=...)`` or ``ktstr.run_defs``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ktstr.declare.topology import Topology
from ktstr.errors import UnknownNameError
from ktstr.scenario.cgroup import CgroupDef, WorkType
from ktstr.scenario.cpuset import CpusetSpec as C
from ktstr.scenario.scenario import Scenario
from ktstr.scenario.steps import Hold, Op, Step


@dataclass(frozen=True)
class Canned:
    name: str
    description: str
    build: Callable[[Topology], Scenario]

    def scenario(self, topology: Topology) -> Scenario:
        s = self.build(topology)
        return s.model_copy(update={"name": self.name, "description": self.description,
                                   "canned": True})


def _half(t: Topology) -> int:
    return max(1, t.total_cpus // 2)


def _two(t: Topology, **kw: object) -> list[CgroupDef]:
    return [CgroupDef(f"cg_{i}", workers=_half(t), **kw) for i in range(2)]  # type: ignore[arg-type]


def _steady(t: Topology) -> Scenario:
    return Scenario.from_defs(_two(t))


def _steady_llc(t: Topology) -> Scenario:
    return Scenario.from_defs(
        [CgroupDef(f"llc_{i}", workers=t.cpus_per_llc, cpuset=C.llc(i)) for i in range(t.llcs)])


def _oversubscribed(t: Topology) -> Scenario:
    return Scenario.from_defs([CgroupDef("cg_0", workers=2 * t.total_cpus)])


def _cpuset_apply(t: Topology) -> Scenario:
    return Scenario.from_steps([
        Step(ops=[Op.add_cgroup(d) for d in _two(t)], hold=Hold.frac(0.5)),
        Step(ops=[Op.set_cpuset("cg_0", C.disjoint(0, 2)), Op.set_cpuset("cg_1", C.disjoint(1, 2))],
             hold=Hold.frac(0.5)),
    ])


def _cpuset_clear(t: Topology) -> Scenario:
    return Scenario.from_steps([
        Step(ops=[Op.add_cgroup(d.cpuset(C.disjoint(i, 2))) for i, d in enumerate(_two(t))],
             hold=Hold.frac(0.5)),
        Step(ops=[Op.clear_cpuset("cg_0"), Op.clear_cpuset("cg_1")], hold=Hold.frac(0.5)),
    ])


def _cpuset_resize(t: Topology) -> Scenario:
    return Scenario.from_steps([
        Step(ops=[Op.add_cgroup(_two(t)[0].cpuset(C.range(0, 0.5))),
                  Op.add_cgroup(_two(t)[1].cpuset(C.range(0.5, 1)))], hold=Hold.frac(0.34)),
        Step(ops=[Op.set_cpuset("cg_1", C.range(0.75, 1)), Op.set_cpuset("cg_0", C.range(0, 0.75))],
             hold=Hold.frac(0.33)),
        Step(ops=[Op.set_cpuset("cg_0", C.range(0, 0.25)), Op.set_cpuset("cg_1", C.range(0.25, 1))],
             hold=Hold.frac(0.33)),
    ])


def _cgroup_add(t: Topology) -> Scenario:
    a, b = _two(t)
    return Scenario.from_steps([Step(ops=[Op.add_cgroup(a)], hold=Hold.frac(0.5)),
                                Step(ops=[Op.add_cgroup(b)], hold=Hold.frac(0.5))])


def _cgroup_remove(t: Topology) -> Scenario:
    a, b = _two(t)
    return Scenario.from_steps([Step(ops=[Op.add_cgroup(a), Op.add_cgroup(b)], hold=Hold.frac(0.5)),
                                Step(ops=[Op.remove_cgroup("cg_1")], hold=Hold.frac(0.5))])


def _affinity_change(t: Topology) -> Scenario:
    return Scenario.from_steps([
        Step(ops=[Op.add_cgroup(CgroupDef("cg_0", workers=_half(t)))], hold=Hold.frac(0.34)),
        Step(ops=[Op.set_affinity("cg_0", C.disjoint(0, 2))], hold=Hold.frac(0.33)),
        Step(ops=[Op.set_affinity("cg_0", C.disjoint(1, 2))], hold=Hold.frac(0.33)),
    ])


def _affinity_pinned(t: Topology) -> Scenario:
    return Scenario.from_defs([
        CgroupDef("pinned", workers=t.total_cpus, affinity=C.disjoint(0, 2)),
        CgroupDef("free", workers=_half(t)),
    ])


def _mixed(t: Topology) -> Scenario:
    return Scenario.from_defs([
        CgroupDef("spin", workers=_half(t)),
        CgroupDef("pipe", workers=1, work_type=WorkType.PIPE_IO),
        CgroupDef("futex", workers=1, work_type=WorkType.FUTEX_PING_PONG),
        CgroupDef("io", workers=1, work_type=WorkType.IO_SYNC),
        CgroupDef("bursty", workers=2, work_type=WorkType.BURSTY),
    ])


def _nested(t: Topology) -> Scenario:
    kids = [CgroupDef(f"leaf_{i}", workers=max(1, _half(t) // 2) + 1) for i in range(2)]
    return Scenario.from_defs([CgroupDef("outer").children(*kids),
                               CgroupDef("flat", workers=_half(t))])


CANNED: dict[str, Canned] = {c.name: c for c in (
    Canned("steady", "two cgroups of cpu_spin workers (half the CPUs each) for the whole run",
           _steady),
    Canned("steady_llc", "one cgroup per LLC, cpuset to that LLC, one worker per CPU",
           _steady_llc),
    Canned("oversubscribed", "one cgroup with two cpu_spin workers per CPU", _oversubscribed),
    Canned("cpuset_apply", "two cgroups; disjoint cpusets applied half-way", _cpuset_apply),
    Canned("cpuset_clear", "two cgroups on disjoint cpusets; cleared half-way", _cpuset_clear),
    Canned("cpuset_resize", "two cgroups splitting the CPUs 50/50, then 75/25, then 25/75",
           _cpuset_resize),
    Canned("cgroup_add", "one cgroup, a second added half-way", _cgroup_add),
    Canned("cgroup_remove", "two cgroups, one removed half-way", _cgroup_remove),
    Canned("affinity_change", "one cgroup whose workers' affinity moves between halves",
           _affinity_change),
    Canned("affinity_pinned", "workers pinned to half the CPUs beside unpinned ones",
           _affinity_pinned),
    Canned("mixed_workloads", "cpu_spin, pipe_io, futex_ping_pong, io_sync and bursty cgroups",
           _mixed),
    Canned("nested_steady", "a parent cgroup with two leaves beside a flat cgroup", _nested),
)}


def canned_scenario(name: str, topology: Topology) -> Scenario:
    """The canned scenario ``name`` built for ``topology``; lists the names if unknown."""
    found = CANNED.get(name)
    if found is None:
        raise UnknownNameError("scenario", name, CANNED)
    return found.scenario(topology)
