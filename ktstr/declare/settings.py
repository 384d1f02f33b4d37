"""Small validated values used by scheduler declarations: sysctls, cgroup paths, kargs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, Field, field_validator, model_validator

from ktstr.declare.base import Frozen

_SYSCTL_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_:@-]+)+$")
#: kernel arguments ktstr sets itself; overriding them breaks the guest init
RESERVED_KARGS = ("console", "loglevel", "init", "rdinit")


class Sysctl(Frozen):
    """A sysctl applied in the guest before the scheduler starts, e.g.
    ``Sysctl("kernel.sched_autogroup_enabled", "0")``. A ``(key, value)`` pair is
    accepted wherever a ``Sysctl`` is expected."""

    _positional = ("key", "value")

    key: str = Field(description="dot form, e.g. kernel.sched_autogroup_enabled")
    value: str = Field(description="written to /proc/sys/<key with dots as slashes>")

    if TYPE_CHECKING:

        def __init__(self, key: str, value: str | int | bool) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: Any) -> Any:
        if isinstance(data, tuple | list):
            return cls.positional_dict(data, "a sysctl")
        return data

    @field_validator("key")
    @classmethod
    def _dot_form(cls, key: str) -> str:
        if "/" in key:
            dotted = key.strip("/").removeprefix("proc/sys/").replace("/", ".")
            raise ValueError(f"sysctl keys use the dot form: write {dotted!r}, not {key!r}")
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
    """Apply in order; for a duplicate key the last write wins (and takes the place of
    the last write in the resulting order)."""
    out: dict[str, str] = {}
    for s in sysctls:
        out.pop(s.key, None)
        out[s.key] = s.value
    return out


class CgroupPath(Frozen):
    """A cgroup below ``/sys/fs/cgroup``: begins with ``/`` and is not ``/`` alone.
    A plain string is accepted wherever a ``CgroupPath`` is expected."""

    _positional = ("path",)

    path: str = Field(min_length=1, description="absolute, below /sys/fs/cgroup")

    if TYPE_CHECKING:

        def __init__(self, path: str) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _from_str(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"a cgroup path must begin with '/': write '/{path}'")
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
        raise ValueError("a kernel argument is one word without spaces; give each its own item")
    name = arg.split("=", 1)[0]
    if name in RESERVED_KARGS:
        raise ValueError(
            f"{name}= is set by ktstr itself and cannot be overridden: it would break the "
            f"guest init (reserved: {', '.join(k + '=' for k in RESERVED_KARGS)})"
        )
    return arg


#: one guest kernel command-line word, checked by ``check_karg``
Karg = Annotated[str, AfterValidator(check_karg)]
