"""ktstr: test Linux process schedulers (sched_ext and EEVDF) on real kernels in QEMU.

Importing ``ktstr`` registers nothing: declarations live in the modules that make them
and are collected by an explicit ``Registry``.
"""

import logging

from ktstr.declare import (
    DEFAULT_TOPOLOGY,
    EEVDF,
    NO_OVERRIDES,
    PRESETS,
    Assert,
    CgroupPath,
    ConfigFileDef,
    Declarations,
    Flag,
    FlagProfile,
    FlagSet,
    HostCapacity,
    MetricCheck,
    MetricHint,
    OutputFormat,
    Payload,
    PayloadKind,
    Polarity,
    Preset,
    Registry,
    Scheduler,
    SchedulerSpec,
    Sysctl,
    Topology,
    TopologyConstraints,
    declare_payload,
    declare_scheduler,
    flag,
    flag_profiles,
    merge_sched_args,
    preset,
)
from ktstr.errors import InfraError, KtstrError, UserError
from ktstr.kernel.id import KernelId
from ktstr.scenario import (
    CgroupDef,
    CpusetSpec,
    Hold,
    Op,
    Scenario,
    SchedPolicy,
    Step,
    WorkType,
)

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "ktstr_test": "ktstr.testkit.decorator",
    "Ctx": "ktstr.testkit.context",
    "RunResult": "ktstr.results.model",
    "Verdict": "ktstr.results.model",
    "run_defs": "ktstr.run.execute",
}


def __getattr__(name: str) -> object:
    """The test-facing names load on first use (they pull in pytest and the VM layer)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ktstr' has no attribute {name!r}")

__all__ = [  # noqa: RUF022 - grouped: declarations, then lazily loaded test API
    "Ctx",
    "RunResult",
    "Verdict",
    "ktstr_test",
    "run_defs",
    "CgroupDef",
    "CpusetSpec",
    "Hold",
    "Op",
    "SchedPolicy",
    "Scenario",
    "Step",
    "WorkType",
    "DEFAULT_TOPOLOGY",
    "EEVDF",
    "NO_OVERRIDES",
    "PRESETS",
    "Assert",
    "CgroupPath",
    "ConfigFileDef",
    "Declarations",
    "Flag",
    "FlagProfile",
    "FlagSet",
    "HostCapacity",
    "InfraError",
    "KernelId",
    "KtstrError",
    "MetricCheck",
    "MetricHint",
    "OutputFormat",
    "Payload",
    "PayloadKind",
    "Polarity",
    "Preset",
    "Registry",
    "Scheduler",
    "SchedulerSpec",
    "Sysctl",
    "Topology",
    "TopologyConstraints",
    "UserError",
    "__version__",
    "declare_payload",
    "declare_scheduler",
    "flag",
    "flag_profiles",
    "merge_sched_args",
    "preset",
]
