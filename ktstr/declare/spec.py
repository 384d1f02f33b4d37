"""``SchedulerSpec``: how to find (or not need) the scheduler binary.

Four forms, each its own model: ``SchedulerSpec.EEVDF`` (``EevdfSpec``),
``SchedulerSpec.discover(name)`` (``DiscoverSpec``), ``SchedulerSpec.path(abs_path)``
(``PathSpec``) and ``SchedulerSpec.kernel_builtin(enable=[...], disable=[...])``
(``KernelBuiltinSpec``). Where a ``SchedulerSpec`` is expected, a bare name means
``discover(name)`` and an absolute path means ``path(abs_path)``.
"""

from __future__ import annotations

import enum
import os
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from ktstr.declare.union import TaggedUnion, Variant


class SpecKind(enum.StrEnum):
    EEVDF = "eevdf"
    DISCOVER = "discover"
    PATH = "path"
    KERNEL_BUILTIN = "kernel_builtin"


class SchedulerSpec(TaggedUnion):
    """One of: ``SchedulerSpec.EEVDF`` (no sched_ext scheduler), ``discover(name)``
    (find the binary by name), ``path(abs_path)`` (an explicit binary) or
    ``kernel_builtin(enable=[...], disable=[...])`` (shell commands, no binary)."""

    #: the kernel's own scheduler: no sched_ext binary (set below the forms)
    EEVDF: ClassVar[EevdfSpec]

    usage = ("SchedulerSpec.EEVDF, SchedulerSpec.discover(name), "
             "SchedulerSpec.path(abs_path) or SchedulerSpec.kernel_builtin(enable=[...])")
    misplaced = {
        "name": "a binary name belongs to discover() only",
        "binary_path": "a binary path belongs to path() only",
        "enable": "enable/disable commands belong to kernel_builtin() only",
        "disable": "enable/disable commands belong to kernel_builtin() only",
    }

    kind: SpecKind

    @classmethod
    def coerce(cls, value: Any) -> Any:
        """A bare name means ``discover(name)``; an absolute path means ``path(p)``."""
        if not isinstance(value, str):
            return value
        if value.startswith("/"):
            return {"kind": SpecKind.PATH, "binary_path": value}
        if "/" in value or not value.strip():
            raise ValueError(
                "a binary is a bare name to discover (scx_simple) or an absolute path "
                "(/usr/bin/scx_simple)"
            )
        return {"kind": SpecKind.DISCOVER, "name": value}

    @classmethod
    def discover(cls, name: str) -> DiscoverSpec:
        return DiscoverSpec(name=name)

    @classmethod
    def path(cls, path: str) -> PathSpec:
        return PathSpec(binary_path=path)

    @classmethod
    def kernel_builtin(cls, *, enable: Sequence[str], disable: Sequence[str] = ()
                       ) -> KernelBuiltinSpec:
        return KernelBuiltinSpec(enable=tuple(enable), disable=tuple(disable))

    @property
    def has_active_scheduling(self) -> bool:
        """False only for EEVDF: every other spec replaces the kernel's scheduler."""
        return True

    @property
    def binary_name(self) -> str | None:
        """The file name of the scheduler's binary; None when there is no binary."""
        return None

    @property
    def has_binary(self) -> bool:
        return self.binary_name is not None

    @abstractmethod
    def describe(self) -> str: ...


class EevdfSpec(Variant, SchedulerSpec):
    """``SchedulerSpec.EEVDF``: the kernel's default scheduler, no sched_ext binary."""

    kind: Literal[SpecKind.EEVDF] = Field(SpecKind.EEVDF, description="this form's tag")

    @property
    def has_active_scheduling(self) -> bool:
        return False

    def describe(self) -> str:
        return "EEVDF (kernel default, no sched_ext)"


class DiscoverSpec(Variant, SchedulerSpec):
    """``SchedulerSpec.discover(name)``: find the binary by name (docs/schedulers.md)."""

    needs = {"name": "discover() needs a binary name"}

    kind: Literal[SpecKind.DISCOVER] = Field(SpecKind.DISCOVER, description="this form's tag")
    name: str = Field(description="binary name to look up: a bare name, no '/'")

    @field_validator("name")
    @classmethod
    def _bare_name(cls, name: str) -> str:
        if not name:
            raise ValueError("discover() needs a binary name")
        if "/" in name:
            raise ValueError(f"discover() takes a bare binary name, got {name!r}: use "
                             "SchedulerSpec.path('/absolute/path') for a path")
        return name

    @property
    def binary_name(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"discover({self.name})"


class PathSpec(Variant, SchedulerSpec):
    """``SchedulerSpec.path(abs_path)``: this binary."""

    needs = {"binary_path": "path() needs an absolute path"}

    kind: Literal[SpecKind.PATH] = Field(SpecKind.PATH, description="this form's tag")
    binary_path: str = Field(description="absolute path of the binary on the host")

    @field_validator("binary_path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not os.path.isabs(path):
            raise ValueError(f"path() needs an absolute path, got {path!r}")
        return path

    @property
    def binary_name(self) -> str:
        return os.path.basename(self.binary_path)

    def describe(self) -> str:
        return f"path({self.binary_path})"


class KernelBuiltinSpec(Variant, SchedulerSpec):
    """``SchedulerSpec.kernel_builtin(enable=[...], disable=[...])``: a scheduler the
    kernel carries, attached and detached by guest shell commands; no binary."""

    needs = {"enable": "kernel_builtin() needs at least one enable command"}

    kind: Literal[SpecKind.KERNEL_BUILTIN] = Field(SpecKind.KERNEL_BUILTIN,
                                                   description="this form's tag")
    enable: tuple[str, ...] = Field(
        description="guest shell commands that attach the scheduler (at least one)")
    disable: tuple[str, ...] = Field((), description="guest shell commands that detach it")

    @field_validator("enable")
    @classmethod
    def _some_enable(cls, enable: tuple[str, ...]) -> tuple[str, ...]:
        if not enable:
            raise ValueError("kernel_builtin() needs at least one enable command")
        return enable

    def describe(self) -> str:
        return f"kernel_builtin(enable={list(self.enable)}, disable={list(self.disable)})"


SchedulerSpec.variants = (EevdfSpec, DiscoverSpec, PathSpec, KernelBuiltinSpec)
EEVDF_SPEC = EevdfSpec()
SchedulerSpec.EEVDF = EEVDF_SPEC
