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
from typing import Any, Self

from pydantic import Field, ValidationError, model_validator

from ktstr._problems import problem_lines
from ktstr.declare.base import Frozen, Problem, build, problems_error
from ktstr.errors import DeclarationError, UnknownNameError

_FLAG_NAME = r"^[a-z][a-z0-9_-]*$"


class Flag(Frozen):
    name: str = Field(pattern=_FLAG_NAME, description="lower-case word: a-z, 0-9, '_', '-'")
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
    """Flags of one scheduler; every ``requires`` names another flag of the set."""

    flags: tuple[Flag, ...] = ()

    @model_validator(mode="after")
    def _requires_known(self) -> Self:
        names = [f.name for f in self.flags]
        problems: list[Problem] = []
        for i, f in enumerate(self.flags):
            if names.index(f.name) != i:
                problems.append((("flags", f.name), f.name, "this flag is declared twice"))
            for r in f.requires:
                if r == f.name:
                    rule = "a flag cannot require itself: remove it from requires"
                    problems.append((("flags", f.name, "requires"), r, rule))
                elif r not in names:
                    rule = "requires an unknown flag; known flags: " + ", ".join(names)
                    problems.append((("flags", f.name, "requires"), r, rule))
        if problems:
            raise problems_error(type(self).__name__, problems)
        return self

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
        raise UnknownNameError("flag profile", name, [p.name for p in self.profiles()])


def make_flag_set(flags: Sequence[Flag], label: str) -> FlagSet:
    """A ``FlagSet`` of ``flags``; ``DeclarationError`` naming ``label`` if invalid."""
    return build(FlagSet, label, flags=tuple(flags))


def flag_profiles(cls: type) -> FlagSet:
    """Class decorator: collect the class's ``flag(...)`` attributes into a ``FlagSet``."""
    flags: list[Flag] = []
    problems: list[str] = []
    for name, pending in vars(cls).items():
        if not isinstance(pending, _PendingFlag):
            continue
        try:
            flags.append(Flag(name=name, args=pending.args, requires=pending.requires))
        except ValidationError as exc:
            problems += [f"flag {name!r}: {line}" for line in problem_lines(exc)]
    if problems:
        raise DeclarationError(f"flag profiles {cls.__name__}", problems)
    return make_flag_set(flags, f"flag profiles {cls.__name__}")
