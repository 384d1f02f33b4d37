"""``Payload``: a binary workload a test runs beside its cgroup workers."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Self

from pydantic import Field, field_validator, model_validator

from ktstr.declare.base import Frozen, check_name
from ktstr.declare.scheduler import Scheduler


class OutputFormat(enum.StrEnum):
    EXIT_CODE = "exit_code"  # only the exit status matters
    JSON = "json"  # stdout is JSON; numeric leaves become metrics (a.b.c)
    STRESS_NG_YAML = "stress_ng_yaml"  # stress-ng --yaml metrics
    TEXT = "text"  # metrics extracted by the payload's own parser


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


class MetricCheck(Frozen):
    """A check on a payload's output: build with ``min``/``max``/``range``/``exists``/
    ``exit_code_eq``."""

    kind: CheckKind = Field(description="which check")
    metric: str | None = Field(None, description="metric name (all but exit_code_eq)")
    low: float | None = Field(None, description="lower bound (min, range)")
    high: float | None = Field(None, description="upper bound (max, range)")
    code: int | None = Field(None, description="expected exit code (exit_code_eq)")

    @model_validator(mode="after")
    def _shape(self) -> Self:
        k = self.kind
        if k is CheckKind.EXIT_CODE_EQ:
            if self.code is None:
                raise ValueError("exit_code_eq needs a code")
        elif not self.metric:
            raise ValueError(f"the {k.value} check needs a metric name")
        if k is CheckKind.MIN and self.low is None:
            raise ValueError("min needs a lower bound")
        if k is CheckKind.MAX and self.high is None:
            raise ValueError("max needs an upper bound")
        if k is CheckKind.RANGE:
            if self.low is None or self.high is None:
                raise ValueError("range needs both bounds")
            if self.low > self.high:
                raise ValueError(f"range bounds are reversed: {self.low} > {self.high}")
        return self

    @classmethod
    def min(cls, metric: str, value: float) -> MetricCheck:
        return cls(kind=CheckKind.MIN, metric=metric, low=value)

    @classmethod
    def max(cls, metric: str, value: float) -> MetricCheck:
        return cls(kind=CheckKind.MAX, metric=metric, high=value)

    @classmethod
    def range(cls, metric: str, low: float, high: float) -> MetricCheck:
        return cls(kind=CheckKind.RANGE, metric=metric, low=low, high=high)

    @classmethod
    def exists(cls, metric: str) -> MetricCheck:
        return cls(kind=CheckKind.EXISTS, metric=metric)

    @classmethod
    def exit_code_eq(cls, code: int) -> MetricCheck:
        return cls(kind=CheckKind.EXIT_CODE_EQ, code=code)

    def describe(self) -> str:
        if self.kind is CheckKind.EXIT_CODE_EQ:
            return f"exit code == {self.code}"
        if self.kind is CheckKind.MIN:
            return f"{self.metric} >= {self.low}"
        if self.kind is CheckKind.MAX:
            return f"{self.metric} <= {self.high}"
        if self.kind is CheckKind.RANGE:
            return f"{self.low} <= {self.metric} <= {self.high}"
        return f"{self.metric} exists"


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
        False, description="run in the test's process group so teardown reaches it"
    )
    known_flags: tuple[str, ...] | None = Field(
        None, description="allow-list of the payload's CLI flags; None means unchecked"
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

    @classmethod
    def binary(cls, name: str, executable: str) -> Payload:
        """Minimal payload: runs ``executable``, judged by its exit code only."""
        return cls(name=name, kind=PayloadKind.binary(executable))

    @property
    def executable(self) -> str | None:
        return self.kind.executable

    def args_with(self, extra: Sequence[str] = ()) -> list[str]:
        """Default arguments, then the test's own."""
        return [*self.default_args, *extra]

    def checks_with(self, extra: Sequence[MetricCheck] = ()) -> list[MetricCheck]:
        return [*self.default_checks, *extra]
