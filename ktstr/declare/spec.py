"""``SchedulerSpec``: how to find (or not need) the scheduler binary."""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from typing import Any, ClassVar, Self

from pydantic import Field, model_validator

from ktstr.declare.base import Frozen


class SpecKind(enum.StrEnum):
    EEVDF = "eevdf"
    DISCOVER = "discover"
    PATH = "path"
    KERNEL_BUILTIN = "kernel_builtin"


class SchedulerSpec(Frozen):
    """One of: ``SchedulerSpec.EEVDF`` (no sched_ext scheduler), ``discover(name)``
    (find the binary by name), ``path(abs_path)`` (an explicit binary) or
    ``kernel_builtin(enable=[...], disable=[...])`` (shell commands, no binary)."""

    #: the kernel's own scheduler: no sched_ext binary (set below the class)
    EEVDF: ClassVar[SchedulerSpec]

    kind: SpecKind = Field(description="which of the four forms")
    name: str | None = Field(None, description="discover(): binary name to look up")
    path_: str | None = Field(None, description="path(): absolute path of the binary")
    enable: tuple[str, ...] = Field(
        (), description="kernel_builtin(): guest shell commands that attach the scheduler"
    )
    disable: tuple[str, ...] = Field(
        (), description="kernel_builtin(): guest shell commands that detach it"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_str(cls, data: Any) -> Any:
        """A bare name means ``discover(name)``; an absolute path means ``path(p)``."""
        if not isinstance(data, str):
            return data
        if data.startswith("/"):
            return {"kind": SpecKind.PATH, "path_": data}
        if "/" in data or not data.strip():
            raise ValueError(
                "a binary is a bare name to discover (scx_simple) or an absolute path "
                "(/usr/bin/scx_simple)"
            )
        return {"kind": SpecKind.DISCOVER, "name": data}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        k = self.kind
        if k is SpecKind.DISCOVER and not self.name:
            raise ValueError("discover() needs a binary name")
        if k is SpecKind.DISCOVER and "/" in (self.name or ""):
            raise ValueError(
                f"discover() takes a bare binary name, got {self.name!r}: use "
                "SchedulerSpec.path('/absolute/path') for a path"
            )
        if k is SpecKind.PATH and not (self.path_ and os.path.isabs(self.path_)):
            raise ValueError(f"path() needs an absolute path, got {self.path_!r}")
        if k is not SpecKind.DISCOVER and self.name is not None:
            raise ValueError("a binary name belongs to discover() only")
        if k is not SpecKind.PATH and self.path_ is not None:
            raise ValueError("a binary path belongs to path() only")
        if k is SpecKind.KERNEL_BUILTIN and not self.enable:
            raise ValueError("kernel_builtin() needs at least one enable command")
        if k is not SpecKind.KERNEL_BUILTIN and (self.enable or self.disable):
            raise ValueError("enable/disable commands belong to kernel_builtin() only")
        return self

    @classmethod
    def discover(cls, name: str) -> SchedulerSpec:
        return cls(kind=SpecKind.DISCOVER, name=name)

    @classmethod
    def path(cls, path: str) -> SchedulerSpec:
        return cls(kind=SpecKind.PATH, path_=path)

    @classmethod
    def kernel_builtin(cls, *, enable: Sequence[str], disable: Sequence[str] = ()) -> SchedulerSpec:
        return cls(kind=SpecKind.KERNEL_BUILTIN, enable=tuple(enable), disable=tuple(disable))

    @property
    def has_active_scheduling(self) -> bool:
        """False only for EEVDF: every other spec replaces the kernel's scheduler."""
        return self.kind is not SpecKind.EEVDF

    @property
    def has_binary(self) -> bool:
        return self.kind in (SpecKind.DISCOVER, SpecKind.PATH)

    @property
    def binary_name(self) -> str | None:
        if self.kind is SpecKind.DISCOVER:
            return self.name
        if self.kind is SpecKind.PATH:
            assert self.path_ is not None
            return os.path.basename(self.path_)
        return None

    def describe(self) -> str:
        if self.kind is SpecKind.EEVDF:
            return "EEVDF (kernel default, no sched_ext)"
        if self.kind is SpecKind.DISCOVER:
            return f"discover({self.name})"
        if self.kind is SpecKind.PATH:
            return f"path({self.path_})"
        return f"kernel_builtin(enable={list(self.enable)}, disable={list(self.disable)})"


EEVDF_SPEC = SchedulerSpec(kind=SpecKind.EEVDF)
SchedulerSpec.EEVDF = EEVDF_SPEC
