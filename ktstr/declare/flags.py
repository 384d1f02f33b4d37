"""Scheduler flag profiles.

Declare flags as class attributes and decorate the class::

    @flag_profiles
    class QmapFlags:
        slice = flag(args=["-s", "5000"])
        fifo_batch = flag(args=["-b", "4"], requires=["slice"])

A profile is a subset of the flags in which every flag's ``requires`` are present; the
profiles are the power set filtered that way, named by the flags joined with ``+`` (in
declaration order), or ``default`` for the empty set.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.errors import DeclarationError

_FLAG_NAME = r"^[a-z][a-z0-9_-]*$"


class Flag(Frozen):
    name: str = Field(pattern=_FLAG_NAME)
    args: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()


class FlagProfile(Frozen):
    name: str
    flags: tuple[str, ...] = ()
    args: tuple[str, ...] = ()


class _PendingFlag:
    """What ``flag()`` returns inside a class body, before the class is decorated."""

    def __init__(self, args: Sequence[str], requires: Sequence[str]) -> None:
        self.args = tuple(args)
        self.requires = tuple(requires)


def flag(*, args: Sequence[str] = (), requires: Sequence[str] = ()) -> Any:
    return _PendingFlag(args, requires)


class FlagSet(Frozen):
    flags: tuple[Flag, ...] = ()

    def profiles(self) -> list[FlagProfile]:
        by_name = {f.name: f for f in self.flags}
        names = [f.name for f in self.flags]
        out: list[FlagProfile] = []
        for size in range(len(names) + 1):
            for combo in combinations(names, size):
                chosen = set(combo)
                if all(set(by_name[n].requires) <= chosen for n in combo):
                    args = tuple(a for n in combo for a in by_name[n].args)
                    out.append(
                        FlagProfile(name="+".join(combo) or "default", flags=combo, args=args)
                    )
        return out

    def profile(self, name: str) -> FlagProfile:
        for p in self.profiles():
            if p.name == name:
                return p
        from ktstr.errors import UnknownNameError

        raise UnknownNameError("flag profile", name, [p.name for p in self.profiles()])


def make_flag_set(flags: Sequence[Flag], label: str) -> FlagSet:
    names = [f.name for f in flags]
    problems = [f"flag {n!r} is declared twice" for n in set(names) if names.count(n) > 1]
    for f in flags:
        for r in f.requires:
            if r not in names:
                problems.append(f"flag {f.name!r} requires unknown flag {r!r}")
            if r == f.name:
                problems.append(f"flag {f.name!r} requires itself")
    if problems:
        raise DeclarationError(label, sorted(problems))
    return FlagSet(flags=tuple(flags))


def flag_profiles(cls: type) -> FlagSet:
    """Class decorator: collect the class's ``flag(...)`` attributes into a ``FlagSet``."""
    flags = [
        Flag(name=name, args=p.args, requires=p.requires)
        for name, p in vars(cls).items()
        if isinstance(p, _PendingFlag)
    ]
    return make_flag_set(flags, cls.__name__)
