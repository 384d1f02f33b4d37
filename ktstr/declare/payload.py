"""``Payload``: a binary workload a test runs beside its cgroup workers."""

from __future__ import annotations

import enum
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from ktstr.declare.base import Frozen, check_name
from ktstr.declare.scheduler import Scheduler
from ktstr.declare.union import TaggedUnion, Variant


class OutputFormat(enum.StrEnum):
    EXIT_CODE = "exit_code"  # only the exit status matters
    JSON = "json"  # stdout is JSON; numeric leaves become metrics (a.b.c)
    STRESS_NG_YAML = "stress_ng_yaml"  # stress-ng --yaml metrics
    TEXT = "text"  # metrics extracted by the payload's own parser
    CYCLICTEST = "cyclictest"  # rt-tests cyclictest -q -h N: latency summary and histogram


class Polarity(enum.StrEnum):
    HIGHER_BETTER = "higher_better"
    LOWER_BETTER = "lower_better"
    NEUTRAL = "neutral"


class MetricHint(Frozen):
    """A metric a payload reports, and which direction is better."""

    name: str = Field(min_length=1, description="dotted metric name, e.g. latency.p99")
    unit: str = Field("", description="unit for display, e.g. us or ops/s")
    polarity: Polarity = Field(Polarity.NEUTRAL, description="whether higher or lower is better")


class CheckKind(enum.StrEnum):
    MIN = "min"
    MAX = "max"
    RANGE = "range"
    EXISTS = "exists"
    EXIT_CODE_EQ = "exit_code_eq"


class MetricCheck(TaggedUnion):
    """A check on a payload's output: build with ``min``/``max``/``range``/``exists``/
    ``exit_code_eq``."""

    usage = ("MetricCheck.min(metric, value), MetricCheck.max(metric, value), "
             "MetricCheck.range(metric, low, high), MetricCheck.exists(metric) or "
             "MetricCheck.exit_code_eq(code)")

    kind: CheckKind

    @classmethod
    def min(cls, metric: str, value: float) -> MinCheck:
        return MinCheck(metric=metric, low=value)

    @classmethod
    def max(cls, metric: str, value: float) -> MaxCheck:
        return MaxCheck(metric=metric, high=value)

    @classmethod
    def range(cls, metric: str, low: float, high: float) -> RangeCheck:
        return RangeCheck(metric=metric, low=low, high=high)

    @classmethod
    def exists(cls, metric: str) -> ExistsCheck:
        return ExistsCheck(metric=metric)

    @classmethod
    def exit_code_eq(cls, code: int) -> ExitCodeCheck:
        return ExitCodeCheck(code=code)

    @abstractmethod
    def describe(self) -> str: ...


_METRIC = "metric name, as the payload's output format reports it"


class MinCheck(Variant, MetricCheck):
    """``MetricCheck.min(metric, value)``: the metric is at least ``value``."""

    needs = {"metric": "the min check needs a metric name", "low": "min needs a lower bound"}

    kind: Literal[CheckKind.MIN] = Field(CheckKind.MIN, description="this form's tag")
    metric: str = Field(min_length=1, description=_METRIC)
    low: float = Field(description="lower bound (inclusive)")

    def describe(self) -> str:
        return f"{self.metric} >= {self.low}"


class MaxCheck(Variant, MetricCheck):
    """``MetricCheck.max(metric, value)``: the metric is at most ``value``."""

    needs = {"metric": "the max check needs a metric name", "high": "max needs an upper bound"}

    kind: Literal[CheckKind.MAX] = Field(CheckKind.MAX, description="this form's tag")
    metric: str = Field(min_length=1, description=_METRIC)
    high: float = Field(description="upper bound (inclusive)")

    def describe(self) -> str:
        return f"{self.metric} <= {self.high}"


class RangeCheck(Variant, MetricCheck):
    """``MetricCheck.range(metric, low, high)``: the metric is within the bounds."""

    needs = {"metric": "the range check needs a metric name",
             "low": "range needs both bounds", "high": "range needs both bounds"}

    kind: Literal[CheckKind.RANGE] = Field(CheckKind.RANGE, description="this form's tag")
    metric: str = Field(min_length=1, description=_METRIC)
    low: float = Field(description="lower bound (inclusive)")
    high: float = Field(description="upper bound (inclusive), not below low")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.low > self.high:
            raise ValueError(f"range bounds are reversed: {self.low} > {self.high}")
        return self

    def describe(self) -> str:
        return f"{self.low} <= {self.metric} <= {self.high}"


class ExistsCheck(Variant, MetricCheck):
    """``MetricCheck.exists(metric)``: the payload reported the metric."""

    needs = {"metric": "the exists check needs a metric name"}

    kind: Literal[CheckKind.EXISTS] = Field(CheckKind.EXISTS, description="this form's tag")
    metric: str = Field(min_length=1, description=_METRIC)

    def describe(self) -> str:
        return f"{self.metric} exists"


class ExitCodeCheck(Variant, MetricCheck):
    """``MetricCheck.exit_code_eq(code)``: the payload exited with ``code``."""

    needs = {"code": "exit_code_eq needs a code"}

    kind: Literal[CheckKind.EXIT_CODE_EQ] = Field(CheckKind.EXIT_CODE_EQ,
                                                  description="this form's tag")
    code: int = Field(description="expected exit code")

    def describe(self) -> str:
        return f"exit code == {self.code}"


MetricCheck.variants = (MinCheck, MaxCheck, RangeCheck, ExistsCheck, ExitCodeCheck)


def flag_of(arg: str) -> str | None:
    """The flag an argument names (``--cpu=4`` -> ``--cpu``), or None for a value
    (``4``, ``-1``, ``-``)."""
    if not arg.startswith("-") or arg in {"-", "--"}:
        return None
    if arg[1:2].isdigit() or arg[1:2] == ".":
        return None
    return arg.split("=", 1)[0]


class PayloadKindTag(enum.StrEnum):
    BINARY = "binary"
    SCHEDULER = "scheduler"


class PayloadKind(Frozen):
    """What a payload runs: an executable, or a scheduler as the workload."""

    tag: PayloadKindTag = Field(description="binary or scheduler")
    executable: str | None = Field(None, description="binary: executable name or path")
    scheduler: Scheduler | None = Field(None, description="scheduler: the Scheduler it runs")

    @model_validator(mode="before")
    @classmethod
    def _from_value(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"tag": PayloadKindTag.BINARY, "executable": data}
        if isinstance(data, Scheduler):
            return {"tag": PayloadKindTag.SCHEDULER, "scheduler": data}
        return data

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.tag is PayloadKindTag.BINARY and self.scheduler is not None:
            raise ValueError("a binary payload takes an executable, not a scheduler")
        if self.tag is PayloadKindTag.SCHEDULER and self.executable is not None:
            raise ValueError("a scheduler payload takes a scheduler, not an executable")
        if self.tag is PayloadKindTag.BINARY and not self.executable:
            raise ValueError("a binary payload needs an executable name or path")
        if self.tag is PayloadKindTag.SCHEDULER and self.scheduler is None:
            raise ValueError("a scheduler payload needs a scheduler")
        return self

    @classmethod
    def binary(cls, executable: str) -> PayloadKind:
        return cls(tag=PayloadKindTag.BINARY, executable=executable)

    @classmethod
    def of_scheduler(cls, scheduler: Scheduler) -> PayloadKind:
        return cls(tag=PayloadKindTag.SCHEDULER, scheduler=scheduler)


class Payload(Frozen):
    """A workload binary with its arguments, checks and metrics."""

    name: str = Field(
        description="display name in results and filters: letters, digits, '_', '.', '-'"
    )
    kind: PayloadKind = Field(
        description="PayloadKind.binary(executable) or PayloadKind.of_scheduler(scheduler); "
        "a plain string means a binary"
    )
    output: OutputFormat = Field(
        OutputFormat.EXIT_CODE, description="how to read the payload's output"
    )
    default_args: tuple[str, ...] = Field(
        (), description="arguments for every run, before the test's own"
    )
    default_checks: tuple[MetricCheck, ...] = Field(
        (), description="checks on every run (min, max, range, exists, exit_code_eq)"
    )
    metrics: tuple[MetricHint, ...] = Field(
        (), description="metrics the payload reports (name, unit, polarity)"
    )
    include_files: tuple[str, ...] = Field(
        (), description="extra host files packed into the guest beside the binary"
    )
    uses_parent_pgrp: bool = Field(
        False, description="stay in the harness's process group (only the process is killed "
        "at its end); default: its own group, reaped whole"
    )
    known_flags: tuple[str, ...] | None = Field(
        None, description="allow-list of the payload's CLI flags: any other flag in its "
        "arguments is a declaration error; None means unchecked"
    )
    description: str = Field("", description="one line for listings")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return check_name(name, "payload")

    @field_validator("default_args", "include_files", "known_flags", mode="before")
    @classmethod
    def _not_a_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(f"give a list of strings, such as [{value!r}], not a string")
        return value

    @model_validator(mode="after")
    def _default_args_known(self) -> Self:
        bad = self.unknown_flags(self.default_args)
        if bad:
            raise ValueError(self.unknown_flags_message(bad, "default_args"))
        return self

    def unknown_flags(self, args: Sequence[str]) -> list[str]:
        """Flags in ``args`` that ``known_flags`` does not list (none when unchecked)."""
        if self.known_flags is None:
            return []
        known = set(self.known_flags)
        return [f for f in (flag_of(a) for a in args) if f is not None and f not in known]

    def unknown_flags_message(self, bad: Sequence[str], where: str) -> str:
        allowed = ", ".join(self.known_flags or ()) or "(none)"
        return (f"payload {self.name!r}: {where} use{'s' if len(bad) == 1 else ''} "
                f"flag{'s' if len(bad) > 1 else ''} {', '.join(repr(b) for b in bad)} not in "
                f"its known_flags; allowed: {allowed} (add the flag to known_flags, or fix "
                "the argument)")

    @classmethod
    def binary(cls, name: str, executable: str) -> Payload:
        """Minimal payload: runs ``executable``, judged by its exit code only."""
        return cls(name=name, kind=PayloadKind.binary(executable))

    @property
    def executable(self) -> str | None:
        return self.kind.executable

    def args_with(self, extra: Sequence[str] = ()) -> list[str]:
        """Default arguments, then the test's own (checked against ``known_flags``)."""
        bad = self.unknown_flags(extra)
        if bad:
            from ktstr.errors import UserError

            raise UserError(self.unknown_flags_message(bad, "the test's arguments"))
        return [*self.default_args, *extra]

    def checks_with(self, extra: Sequence[MetricCheck] = ()) -> list[MetricCheck]:
        return [*self.default_checks, *extra]
