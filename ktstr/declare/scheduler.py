"""The ``Scheduler`` declaration and the scheduler-argument merge order."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, AliasChoices, Field, field_validator, model_validator

from ktstr.declare.base import Frozen, Problem, check_name, problems_error
from ktstr.declare.checks import Assert
from ktstr.declare.flags import FlagProfile, FlagSet
from ktstr.declare.settings import CgroupPath, Karg, Sysctl
from ktstr.declare.spec import EEVDF_SPEC, SchedulerSpec, SpecKind
from ktstr.declare.topology import DEFAULT_TOPOLOGY, Topology, TopologyConstraints
from ktstr.errors import UserError
from ktstr.kernel.id import KernelId

INCLUDE_DIR = "/include-files"


class ConfigFileDef(Frozen):
    """Inline-config seam: the test's config content is written to ``guest_path`` and
    ``{file}`` in ``arg_template`` is replaced by that path. An ``(arg_template,
    guest_path)`` pair is accepted wherever a ``ConfigFileDef`` is expected."""

    _positional = ("arg_template", "guest_path")

    arg_template: str = Field(description="scheduler argument containing {file}")
    guest_path: str = Field(description="absolute guest path the test's config is written to")

    if TYPE_CHECKING:

        def __init__(self, arg_template: str, guest_path: str) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: Any) -> Any:
        if isinstance(data, tuple | list):
            return cls.positional_dict(data, "config_file_def")
        return data

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


def _check_kernel_spec(spec: str) -> str:
    try:
        KernelId.parse(spec)
    except UserError as exc:
        raise ValueError(str(exc)) from exc
    return spec


def _discover_by_name(fields: dict[str, Any]) -> SchedulerSpec:
    """The default binary: discover one named like the scheduler."""
    return SchedulerSpec.discover(fields["name"])


#: one entry of ``Scheduler.kernels``, checked by ``KernelId.parse``
KernelSpec = Annotated[str, AfterValidator(_check_kernel_spec)]


class Scheduler(Frozen):
    """How to launch and configure the scheduler under test.

    Constructing a ``Scheduler`` does not register it: use ``declare_scheduler`` for
    schedulers the verifier sweep should see.
    """

    #: the kernel's default scheduler, no sched_ext (set below the class)
    EEVDF: ClassVar[Scheduler]

    name: str = Field(description="short unique name: letters, digits, '_', '.', '-'")
    binary: SchedulerSpec = Field(
        default_factory=_discover_by_name,
        description="how to find the binary: a SchedulerSpec, a bare name to discover or "
        "an absolute path; default discover(name)",
    )
    sysctls: tuple[Sysctl, ...] = Field(
        (),
        description="applied in order before the scheduler starts; a duplicate key's last "
        "write wins; a {key: value} mapping or (key, value) pairs are accepted",
    )
    kargs: tuple[Karg, ...] = Field(
        (),
        description="extra guest kernel command-line words; console=, loglevel=, init= and "
        "rdinit= are reserved",
    )
    assert_: Assert = Field(
        default_factory=Assert,
        validation_alias=AliasChoices("assert_", "assert"),
        serialization_alias="assert",
        description="check overrides between ktstr's defaults and the test's own",
    )
    cgroup_parent: CgroupPath | None = Field(
        None,
        description="cgroup the scheduler manages; created in the guest and passed as "
        "--cell-parent-cgroup PATH",
    )
    sched_args: tuple[str, ...] = Field(
        (), description="arguments for every test, before the test's own"
    )
    topology: Topology = Field(
        DEFAULT_TOPOLOGY,
        description="default VM topology; a test's explicit dimensions override, unset "
        "ones inherit",
    )
    constraints: TopologyConstraints = Field(
        default_factory=TopologyConstraints,
        description="which gauntlet topologies this scheduler accepts",
    )
    config_file: str | None = Field(
        None,
        min_length=1,
        description="host file packed at /include-files/NAME and passed as --config",
    )
    config_file_def: ConfigFileDef | None = Field(
        None,
        description="(arg_template, guest_path) for inline config from the test; "
        "alternative to config_file",
    )
    kernels: tuple[KernelSpec, ...] = Field(
        (),
        description="verifier-sweep filter of KernelId specs, matched against each resolved "
        "kernel ('7.2' = the 7.2 series; docs/verifier.md); empty means every kernel",
    )
    flags: FlagSet = Field(
        default_factory=FlagSet, description="flag profiles swept by the gauntlet"
    )
    description: str = Field("", description="one line for listings")
    verbose_args: tuple[str, ...] = Field(
        (), description="arguments that make the scheduler log more, added to the traced "
        "rerun of a failed run (e.g. ('-v',))")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return check_name(name, "scheduler")

    @field_validator("sysctls", mode="before")
    @classmethod
    def _sysctl_mapping(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return list(value.items())
        return value

    @field_validator("config_file")
    @classmethod
    def _names_a_file(cls, path: str | None) -> str | None:
        if path is not None and not os.path.basename(path):
            raise ValueError("config_file names a file, e.g. 'configs/my_sched.toml'")
        return path

    @field_validator("sched_args", "kargs", "kernels", "verbose_args", mode="before")
    @classmethod
    def _not_a_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(f"give a list of strings, such as [{value!r}], not a string")
        return value

    @model_validator(mode="after")
    def _alternatives(self) -> Self:
        if self.config_file and self.config_file_def:
            raise ValueError(
                f"config_file ({self.config_file!r}) and config_file_def "
                f"({self.config_file_def.arg_template!r}, {self.config_file_def.guest_path!r})"
                " are alternatives: use config_file for a host file, config_file_def for "
                "inline content from the test, not both"
            )
        if self.binary.kind is SpecKind.EEVDF:
            rule = "an EEVDF scheduler runs no binary, so this cannot apply: remove it"
            problems: list[Problem] = [
                ((name,), getattr(self, name), rule)
                for name in ("sched_args", "cgroup_parent", "config_file", "config_file_def")
                if getattr(self, name)
            ]
            if problems:
                raise problems_error(type(self).__name__, problems)
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
