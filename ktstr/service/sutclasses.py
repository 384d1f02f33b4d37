"""``sutclasses.yaml``: the SUT classes and their SUTs. Loading is strict: any problem
stops the service with the file, the entry and the field named."""

from __future__ import annotations

import enum
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


class Dispatch(enum.StrEnum):
    """How a class's jobs reach its SUTs."""

    PULL = "pull"  # ``ktstr sched worker`` on each SUT claims them
    SSH = "ssh"  # the service runs them over ssh (every SUT has ``method: SSH``)
    SLURM = "slurm"  # the service submits them with sbatch (``type: slurm``)


#: what a dispatched job runs on the SUT (the Assignment JSON is appended)
DEFAULT_COMMAND = ["python3", "-m", "ktstr.worker.runcell"]


class StaticParams(Frozen):
    suts: list[Sut] = Field(min_length=1)
    #: ``pull`` (default: wait for pull workers) or ``ssh`` (the service dispatches)
    dispatch: Literal[Dispatch.PULL, Dispatch.SSH] = Dispatch.PULL
    #: the remote command of a dispatched job, before the job's JSON
    command: list[str] = Field(default_factory=lambda: list(DEFAULT_COMMAND), min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> StaticParams:
        seen: set[str] = set()
        for s in self.suts:
            if s.name in seen:
                raise ValueError(f"SUT name {s.name!r} appears twice")
            seen.add(s.name)
            if self.dispatch is Dispatch.SSH and s.connection.method != "SSH":
                raise ValueError(f"SUT {s.name!r}: dispatch: ssh needs connection.method "
                                 f"SSH, not {s.connection.method!r}")
            if self.dispatch is Dispatch.SSH and not s.connection.params.get("host"):
                raise ValueError(f"SUT {s.name!r}: dispatch: ssh needs connection.params.host")
        return self


class SlurmClassParams(Frozen):
    """``type: slurm``: jobs are ``sbatch``-ed; ``max_jobs`` of them run at once."""

    partition: str | None = None
    account: str | None = None
    sbatch_args: list[str] = Field(default_factory=list)
    #: the most jobs of this class in Slurm at once (each gets a slot SUT ``CLASS.N``)
    max_jobs: int = Field(1, ge=1, le=1000)
    #: a directory every node sees (kickoff scripts and job output); default: storage
    spool: Path | None = None
    #: slurm.conf for the Slurm commands (default: Slurm's own lookup, SLURM_CONF)
    slurm_conf: Path | None = None
    command: list[str] = Field(default_factory=lambda: list(DEFAULT_COMMAND), min_length=1)


class _ClassBase(Frozen):
    sutclass: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    enabled: bool = True


class SutClass(_ClassBase):
    """``type: static``: a fixed list of SUTs."""

    type: Literal["static"]
    params: StaticParams

    @property
    def suts(self) -> list[Sut]:
        return list(self.params.suts)

    @property
    def sut_names(self) -> list[str]:
        return [s.name for s in self.params.suts]

    @property
    def dispatch(self) -> Dispatch:
        return self.params.dispatch


class SlurmClass(_ClassBase):
    """``type: slurm``: a Slurm partition; its SUTs are ``max_jobs`` slots."""

    type: Literal["slurm"]
    params: SlurmClassParams

    @property
    def suts(self) -> list[Sut]:
        return [Sut(name=f"{self.sutclass}.{i}", connection=Connection(method="slurm"))
                for i in range(1, self.params.max_jobs + 1)]

    @property
    def sut_names(self) -> list[str]:
        return [s.name for s in self.suts]

    @property
    def dispatch(self) -> Dispatch:
        return Dispatch.SLURM


AnySutClass = SutClass | SlurmClass
_TYPES: dict[str, type[SutClass] | type[SlurmClass]] = {"static": SutClass,
                                                          "slurm": SlurmClass}


def parse_sutclasses(text: str, path: Path) -> list[AnySutClass]:
    """Parse the file's text (pure apart from naming ``path`` in errors)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SutClassesError(path, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(data, list):
        raise SutClassesError(path, ["expected a list of SUT classes "
                                     "(- sutclass: NAME, type: static|slurm, params: ...)"])
    out: list[AnySutClass] = []
    problems: list[str] = []
    for i, entry in enumerate(data):
        label = f"entry {i}"
        if isinstance(entry, dict) and isinstance(entry.get("sutclass"), str):
            label += f" ({entry['sutclass']})"
        if not isinstance(entry, dict):
            problems.append(f"{label}: expected a mapping")
            continue
        kind = entry.get("type")
        if kind not in _TYPES:
            problems.append(f"{label}: type: must be one of {', '.join(sorted(_TYPES))}, "
                            f"not {kind!r}")
            continue
        try:
            out.append(_TYPES[str(kind)].model_validate(entry))
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


def load_sutclasses(path: Path) -> list[AnySutClass]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SutClassesError(path, [f"cannot read: {exc.strerror or exc}"]) from exc
    return parse_sutclasses(text, path)
