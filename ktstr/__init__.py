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

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
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
