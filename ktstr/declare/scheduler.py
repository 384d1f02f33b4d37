"""The ``Scheduler`` declaration and the scheduler-argument merge order."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar, Self

from pydantic import Field, field_validator, model_validator

from ktstr.declare.base import Frozen
from ktstr.declare.checks import Assert
from ktstr.declare.flags import FlagProfile, FlagSet
from ktstr.declare.settings import CgroupPath, Sysctl, check_karg
from ktstr.declare.spec import EEVDF_SPEC, SchedulerSpec
from ktstr.declare.topology import DEFAULT_TOPOLOGY, Topology, TopologyConstraints
from ktstr.kernel.id import KernelId

INCLUDE_DIR = "/include-files"


class ConfigFileDef(Frozen):
    """Inline-config seam: the test's config content is written to ``guest_path`` and
    ``{file}`` in ``arg_template`` is replaced by that path."""

    _positional = ("arg_template", "guest_path")

    arg_template: str
    guest_path: str

    @field_validator("arg_template")
    @classmethod
    def _has_placeholder(cls, v: str) -> str:
        if "{file}" not in v:
            raise ValueError("the argument template must contain '{file}', e.g. '--config={file}'")
        return v

    @field_validator("guest_path")
    @classmethod
    def _abs(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("the guest path must be absolute, e.g. '/include-files/my.json'")
        return v

    def arg(self) -> str:
        return self.arg_template.replace("{file}", self.guest_path)


class Scheduler(Frozen):
    """How to launch and configure the scheduler under test.

    Constructing a ``Scheduler`` does not register it: use ``declare_scheduler`` for
    schedulers the verifier sweep should see.
    """

    EEVDF: ClassVar[Scheduler]

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    binary: SchedulerSpec = Field(default=None, validate_default=True)  # type: ignore[assignment]
    sysctls: tuple[Sysctl, ...] = ()
    kargs: tuple[str, ...] = ()
    assert_: Assert = Field(default_factory=Assert, alias="assert")
    cgroup_parent: CgroupPath | None = None
    sched_args: tuple[str, ...] = ()
    topology: Topology = DEFAULT_TOPOLOGY
    constraints: TopologyConstraints = Field(default_factory=TopologyConstraints)
    config_file: str | None = None
    config_file_def: ConfigFileDef | None = None
    kernels: tuple[str, ...] = ()
    flags: FlagSet = Field(default_factory=FlagSet)
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        binary = data.get("binary")
        if binary is None:
            data["binary"] = SchedulerSpec.discover(str(data.get("name", "")) or "?")
        elif isinstance(binary, str):
            data["binary"] = (
                SchedulerSpec.path(binary) if binary.startswith("/")
                else SchedulerSpec.discover(binary)
            )
        if "topology" in data:
            data["topology"] = Topology.coerce(data["topology"])
        sysctls = data.get("sysctls")
        if isinstance(sysctls, dict):
            data["sysctls"] = [Sysctl(k, v) for k, v in sysctls.items()]
        elif isinstance(sysctls, list | tuple):
            data["sysctls"] = [
                Sysctl(*s) if isinstance(s, tuple | list) else s for s in sysctls
            ]
        parent = data.get("cgroup_parent")
        if isinstance(parent, str):
            data["cgroup_parent"] = {"path": parent}
        cfd = data.get("config_file_def")
        if isinstance(cfd, tuple | list):
            data["config_file_def"] = {"arg_template": cfd[0], "guest_path": cfd[1]} if len(
                cfd) == 2 else cfd
        for key in ("sched_args", "kargs", "kernels"):
            if isinstance(data.get(key), str):
                raise_str = data[key]
                raise ValueError(f"{key} is a list of strings, got the string {raise_str!r}")
        return data

    @field_validator("kargs")
    @classmethod
    def _kargs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for arg in v:
            check_karg(arg)
        return v

    @field_validator("kernels")
    @classmethod
    def _kernels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for spec in v:
            KernelId.parse(spec)
        return v

    @model_validator(mode="after")
    def _alternatives(self) -> Self:
        if self.config_file and self.config_file_def:
            raise ValueError(
                "config_file and config_file_def are alternatives: use config_file for a "
                "host file, config_file_def for inline content from the test"
            )
        if self.binary.kind.value == "eevdf" and (
            self.sched_args or self.cgroup_parent or self.config_file or self.config_file_def
        ):
            raise ValueError(
                "an EEVDF scheduler has no binary: sched_args, cgroup_parent and config files "
                "do not apply"
            )
        return self

    # -- derived ---------------------------------------------------------------------

    @property
    def config_guest_path(self) -> str | None:
        if self.config_file:
            return f"{INCLUDE_DIR}/{os.path.basename(self.config_file)}"
        if self.config_file_def:
            return self.config_file_def.guest_path
        return None

    def flag_profiles(self) -> list[FlagProfile]:
        return self.flags.profiles()

    def resolve_topology(
        self,
        *,
        numa_nodes: int | None = None,
        llcs: int | None = None,
        cores: int | None = None,
        threads: int | None = None,
    ) -> Topology:
        """Explicit dimensions override, unset ones inherit from this scheduler."""
        return self.topology.with_overrides(
            numa_nodes=numa_nodes, llcs=llcs, cores_per_llc=cores, threads_per_core=threads
        )

    def merged_args(
        self,
        extra_args: Sequence[str] = (),
        flag_args: Sequence[str] = (),
        *,
        inline_config: bool = False,
    ) -> list[str]:
        return merge_sched_args(self, extra_args, flag_args, inline_config=inline_config)


def merge_sched_args(
    scheduler: Scheduler,
    extra_args: Sequence[str] = (),
    flag_args: Sequence[str] = (),
    *,
    inline_config: bool = False,
) -> list[str]:
    """The scheduler's command line, in the documented order:

    1. ``config_file`` -> ``--config /include-files/NAME`` (or, with ``inline_config``,
       the ``config_file_def`` template with ``{file}`` substituted),
    2. ``cgroup_parent`` -> ``--cell-parent-cgroup PATH``,
    3. the scheduler's ``sched_args``,
    4. the test's extra arguments,
    5. the flag profile's arguments.
    """
    args: list[str] = []
    if scheduler.config_file:
        args += ["--config", f"{INCLUDE_DIR}/{os.path.basename(scheduler.config_file)}"]
    elif scheduler.config_file_def and inline_config:
        args.append(scheduler.config_file_def.arg())
    if scheduler.cgroup_parent is not None:
        args += ["--cell-parent-cgroup", scheduler.cgroup_parent.path]
    args += scheduler.sched_args
    args += extra_args
    args += flag_args
    return args


EEVDF = Scheduler(name="eevdf", binary=EEVDF_SPEC, description="the kernel's default scheduler")
Scheduler.EEVDF = EEVDF
