"""``Payload``: a binary workload a test runs beside its cgroup workers."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Self

from pydantic import Field, model_validator

from ktstr.declare.base import Frozen
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
    name: str = Field(min_length=1)
    unit: str = ""
    polarity: Polarity = Polarity.NEUTRAL


class CheckKind(enum.StrEnum):
    MIN = "min"
    MAX = "max"
    RANGE = "range"
    EXISTS = "exists"
    EXIT_CODE_EQ = "exit_code_eq"


class MetricCheck(Frozen):
    """A check on a payload's output: build with ``min``/``max``/``range``/``exists``/
    ``exit_code_eq``."""

    kind: CheckKind
    metric: str | None = None
    low: float | None = None
    high: float | None = None
    code: int | None = None

    @model_validator(mode="after")
    def _shape(self) -> Self:
        k = self.kind
        if k is CheckKind.EXIT_CODE_EQ:
            if self.code is None:
                raise ValueError("exit_code_eq needs a code")
        elif not self.metric:
            raise ValueError(f"a {k.value} check needs a metric name")
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
    tag: PayloadKindTag
    executable: str | None = None
    scheduler: Scheduler | None = None

    @model_validator(mode="after")
    def _shape(self) -> Self:
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

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: PayloadKind
    output: OutputFormat = OutputFormat.EXIT_CODE
    default_args: tuple[str, ...] = ()
    default_checks: tuple[MetricCheck, ...] = ()
    metrics: tuple[MetricHint, ...] = ()
    include_files: tuple[str, ...] = ()
    uses_parent_pgrp: bool = False
    known_flags: tuple[str, ...] | None = None
    description: str = ""

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
