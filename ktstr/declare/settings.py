"""Small validated values used by scheduler declarations: sysctls, cgroup paths, kargs."""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import Field, field_validator

from ktstr.declare.base import Frozen

_SYSCTL_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_:@-]+)+$")
#: kernel arguments ktstr sets itself; overriding them breaks the guest init
RESERVED_KARGS = ("console", "loglevel", "init", "rdinit")


class Sysctl(Frozen):
    """A sysctl applied in the guest before the scheduler starts, e.g.
    ``Sysctl("kernel.sched_autogroup_enabled", "0")``."""

    _positional = ("key", "value")

    key: str
    value: str

    @field_validator("key")
    @classmethod
    def _dot_form(cls, key: str) -> str:
        if "/" in key:
            dotted = key.strip("/").removeprefix("proc/sys/").replace("/", ".")
            raise ValueError(f"use the dot form for sysctl keys: {dotted!r}, not {key!r}")
        if not _SYSCTL_KEY.match(key):
            raise ValueError(
                "a sysctl key is dot-separated words such as 'kernel.sched_autogroup_enabled'"
            )
        return key

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, value: object) -> str:
        if isinstance(value, bool):
            value = int(value)
        text = str(value)
        if "\n" in text or not text.strip():
            raise ValueError("a sysctl value must be non-empty and on one line")
        return text

    @property
    def proc_path(self) -> str:
        return "/proc/sys/" + self.key.replace(".", "/")


def effective_sysctls(sysctls: Iterable[Sysctl]) -> dict[str, str]:
    """Apply in order; for a duplicate key the last write wins."""
    out: dict[str, str] = {}
    for s in sysctls:
        out.pop(s.key, None)
        out[s.key] = s.value
    return out


class CgroupPath(Frozen):
    """A cgroup below ``/sys/fs/cgroup``: begins with ``/`` and is not ``/`` alone."""

    _positional = ("path",)

    path: str = Field(min_length=1)

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"a cgroup path must begin with '/': use '/{path}'")
        if path.rstrip("/") == "":
            raise ValueError("a cgroup path must not be '/' alone: name a subtree such as '/ktstr'")
        parts = path.strip("/").split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise ValueError("a cgroup path must not contain empty, '.' or '..' components")
        return "/" + "/".join(parts)

    def __str__(self) -> str:
        return self.path


def check_karg(arg: str) -> str:
    """Validate one guest kernel argument; returns it unchanged."""
    if not arg or any(c.isspace() for c in arg):
        raise ValueError(f"a kernel argument is one word without spaces, got {arg!r}")
    name = arg.split("=", 1)[0]
    if name in RESERVED_KARGS:
        raise ValueError(
            f"kernel argument {name}= is set by ktstr and cannot be overridden "
            f"(reserved: {', '.join(k + '=' for k in RESERVED_KARGS)})"
        )
    return arg
