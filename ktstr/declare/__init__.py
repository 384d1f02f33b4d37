"""Declarations: frozen, validated descriptions of schedulers, payloads and topologies."""

from ktstr.declare.checks import NO_OVERRIDES, Assert
from ktstr.declare.flags import Flag, FlagProfile, FlagSet, flag, flag_profiles
from ktstr.declare.payload import (
    CheckKind,
    ExistsCheck,
    ExitCodeCheck,
    MaxCheck,
    MetricCheck,
    MetricHint,
    MinCheck,
    OutputFormat,
    Payload,
    PayloadKind,
    Polarity,
    RangeCheck,
)
from ktstr.declare.presets import PRESETS, Preset, preset
from ktstr.declare.registry import (
    Declarations,
    Registry,
    declare_payload,
    declare_scheduler,
    default_registry,
)
from ktstr.declare.scheduler import EEVDF, ConfigFileDef, Scheduler, merge_sched_args
from ktstr.declare.settings import CgroupPath, Sysctl, effective_sysctls
from ktstr.declare.spec import (
    DiscoverSpec,
    EevdfSpec,
    KernelBuiltinSpec,
    PathSpec,
    SchedulerSpec,
    SpecKind,
)
from ktstr.declare.topology import (
    DEFAULT_TOPOLOGY,
    HostCapacity,
    Topology,
    TopologyConstraints,
    vm_memory_mb,
)

__all__ = [
    "DEFAULT_TOPOLOGY",
    "EEVDF",
    "NO_OVERRIDES",
    "PRESETS",
    "Assert",
    "CgroupPath",
    "CheckKind",
    "ConfigFileDef",
    "Declarations",
    "DiscoverSpec",
    "EevdfSpec",
    "ExistsCheck",
    "ExitCodeCheck",
    "Flag",
    "FlagProfile",
    "FlagSet",
    "HostCapacity",
    "KernelBuiltinSpec",
    "MaxCheck",
    "MetricCheck",
    "MetricHint",
    "MinCheck",
    "OutputFormat",
    "PathSpec",
    "Payload",
    "PayloadKind",
    "Polarity",
    "Preset",
    "RangeCheck",
    "Registry",
    "Scheduler",
    "SchedulerSpec",
    "SpecKind",
    "Sysctl",
    "Topology",
    "TopologyConstraints",
    "declare_payload",
    "declare_scheduler",
    "default_registry",
    "effective_sysctls",
    "flag",
    "flag_profiles",
    "merge_sched_args",
    "preset",
    "vm_memory_mb",
]
