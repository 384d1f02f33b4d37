"""Facts read from a kernel ``.config``: the options ktstr's layers decide on.

Parsing is pure: ``parse_config(text)`` returns every ``CONFIG_X=value`` line and
``ConfigFacts.from_text`` keeps the tracked ones (``y``, ``m`` or a string value).
"""

from __future__ import annotations

import re

from ktstr.declare.base import Frozen

#: options recorded in a cache entry's metadata (without the CONFIG_ prefix)
TRACKED_OPTIONS: tuple[str, ...] = (
    "SCHED_CLASS_EXT",
    "DEBUG_INFO_BTF",
    "DEBUG_INFO_BTF_MODULES",
    "BPF_SYSCALL",
    "BPF_JIT",
    "BPF_JIT_ALWAYS_ON",
    "NUMA",
    "NUMA_EMU",
    "SCHED_MC",
    "SCHED_SMT",
    "SCHED_CORE",
    "SCHED_DEBUG",
    "CGROUPS",
    "CGROUP_SCHED",
    "EXT_GROUP_SCHED",
    "FAIR_GROUP_SCHED",
    "CPUSETS",
    "DEVTMPFS",
    "DEVTMPFS_MOUNT",
    "DEBUG_FS",
    "FTRACE",
    "IKCONFIG_PROC",
    "VIRTIO_PCI",
    "VIRTIO_CONSOLE",
    "VIRTIO_BLK",
    "VIRTIO_FS",
    "NET_9P_VIRTIO",
    "9P_FS",
    "VSOCKETS",
    "VIRTIO_VSOCKETS",
    "HZ",
    "NR_CPUS",
    "PREEMPT",
    "PREEMPT_DYNAMIC",
    "LOCALVERSION",
)

_LINE = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")


def parse_config(text: str) -> dict[str, str]:
    """``CONFIG_X=y`` -> ``{"X": "y"}``; quoted strings unquoted; ``# ... is not set`` skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        name, value = m.groups()
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            value = value[1:-1]
        out[name] = value
    return out


class ConfigFacts(Frozen):
    """The tracked options that are set, by name without ``CONFIG_``."""

    options: dict[str, str] = {}

    @classmethod
    def from_text(cls, text: str) -> ConfigFacts:
        parsed = parse_config(text)
        return cls(options={k: parsed[k] for k in TRACKED_OPTIONS if k in parsed})

    def value(self, name: str) -> str | None:
        return self.options.get(name.removeprefix("CONFIG_"))

    def builtin(self, name: str) -> bool:
        return self.value(name) == "y"

    def available(self, name: str) -> bool:
        """Built in or a module."""
        return self.value(name) in ("y", "m")

    @property
    def sched_ext(self) -> bool:
        return self.builtin("SCHED_CLASS_EXT")

    @property
    def btf(self) -> bool:
        return self.builtin("DEBUG_INFO_BTF")
