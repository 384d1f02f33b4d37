"""``sutclasses.yaml``: the SUT classes and their SUTs. Loading is strict: any problem
stops the service with the file, the entry and the field named."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from ktstr._problems import problem_lines
from ktstr.declare.base import Frozen
from ktstr.errors import UserError

Name = str


class SutClassesError(UserError):
    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__("\n".join(f"{path}: {p}" for p in self.problems))


class Connection(Frozen):
    method: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class Sut(Frozen):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    connection: Connection


class StaticParams(Frozen):
    suts: list[Sut] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> StaticParams:
        seen: set[str] = set()
        for s in self.suts:
            if s.name in seen:
                raise ValueError(f"SUT name {s.name!r} appears twice")
            seen.add(s.name)
        return self


class SutClass(Frozen):
    sutclass: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    type: Literal["static"]
    params: StaticParams
    enabled: bool = True

    @property
    def sut_names(self) -> list[str]:
        return [s.name for s in self.params.suts]


def parse_sutclasses(text: str, path: Path) -> list[SutClass]:
    """Parse the file's text (pure apart from naming ``path`` in errors)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SutClassesError(path, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(data, list):
        raise SutClassesError(path, ["expected a list of SUT classes "
                                     "(- sutclass: NAME, type: static, params: ...)"])
    out: list[SutClass] = []
    problems: list[str] = []
    for i, entry in enumerate(data):
        label = f"entry {i}"
        if isinstance(entry, dict) and isinstance(entry.get("sutclass"), str):
            label += f" ({entry['sutclass']})"
        if not isinstance(entry, dict):
            problems.append(f"{label}: expected a mapping")
            continue
        try:
            out.append(SutClass.model_validate(entry))
        except ValidationError as exc:
            problems.extend(f"{label}: {p}" for p in problem_lines(exc))
    seen_class: set[str] = set()
    seen_sut: dict[str, str] = {}
    for c in out:
        if c.sutclass in seen_class:
            problems.append(f"sutclass {c.sutclass!r} is defined twice")
        seen_class.add(c.sutclass)
        for name in c.sut_names:
            if name in seen_sut and seen_sut[name] != c.sutclass:
                problems.append(f"SUT {name!r} is in both {seen_sut[name]!r} and "
                                f"{c.sutclass!r}")
            seen_sut[name] = c.sutclass
    if problems:
        raise SutClassesError(path, problems)
    return out


def load_sutclasses(path: Path) -> list[SutClass]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SutClassesError(path, [f"cannot read: {exc.strerror or exc}"]) from exc
    return parse_sutclasses(text, path)
