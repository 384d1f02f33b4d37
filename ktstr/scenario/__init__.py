"""Declarative scenarios: cgroups of workers, cpusets, steps, and the checks on them.

A ``Scenario`` is either ``CgroupDef``s held for the run's duration or a list of
``Step``s (operations, then a hold). ``plan_scenario`` checks it against a topology and
turns it into guest commands; the guest runs real worker processes (``ktstr-worker``)
that report kernel counters, and ``ktstr.results.checks`` judges them.
See docs/scenarios.md.
"""

from typing import TYPE_CHECKING

from ktstr._lazy import lazy_exports

if TYPE_CHECKING:  # the names below load on first use (importing the package is cheap)
    from ktstr.scenario.canned import CANNED, canned_scenario
    from ktstr.scenario.cgroup import CgroupDef, SchedPolicy, WorkType
    from ktstr.scenario.cpuset import CpusetSpec, cpulist, resolve_cpus
    from ktstr.scenario.plan import ScenarioPlan, plan_scenario
    from ktstr.scenario.reports import WorkerReport
    from ktstr.scenario.runner import request_fields
    from ktstr.scenario.scenario import Scenario
    from ktstr.scenario.steps import Hold, Op, Step

_EXPORTS = {
    "CANNED": "ktstr.scenario.canned",
    "canned_scenario": "ktstr.scenario.canned",
    "CgroupDef": "ktstr.scenario.cgroup",
    "SchedPolicy": "ktstr.scenario.cgroup",
    "WorkType": "ktstr.scenario.cgroup",
    "CpusetSpec": "ktstr.scenario.cpuset",
    "cpulist": "ktstr.scenario.cpuset",
    "resolve_cpus": "ktstr.scenario.cpuset",
    "ScenarioPlan": "ktstr.scenario.plan",
    "plan_scenario": "ktstr.scenario.plan",
    "WorkerReport": "ktstr.scenario.reports",
    "request_fields": "ktstr.scenario.runner",
    "Scenario": "ktstr.scenario.scenario",
    "Hold": "ktstr.scenario.steps",
    "Op": "ktstr.scenario.steps",
    "Step": "ktstr.scenario.steps",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "CANNED",
    "CgroupDef",
    "CpusetSpec",
    "Hold",
    "Op",
    "Scenario",
    "ScenarioPlan",
    "SchedPolicy",
    "Step",
    "WorkType",
    "WorkerReport",
    "canned_scenario",
    "cpulist",
    "plan_scenario",
    "request_fields",
    "resolve_cpus",
]

