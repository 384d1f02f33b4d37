"""Payload declarations: fields, kinds, checks and metrics."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ktstr import (
    EEVDF,
    MetricCheck,
    MetricHint,
    OutputFormat,
    Payload,
    PayloadKind,
    Polarity,
)
from ktstr.declare import Declarations, declare_payload
from ktstr.errors import DeclarationError


def test_every_field_of_the_seed_is_declared() -> None:
    seed = {"name", "kind", "output", "default_args", "default_checks", "metrics",
            "include_files", "uses_parent_pgrp", "known_flags"}  # fmt: skip
    assert seed <= set(Payload.model_fields)


def test_minimal_binary_payload() -> None:
    p = Payload.binary("schbench", "schbench")
    assert p.executable == "schbench"
    assert p.output is OutputFormat.EXIT_CODE
    assert (p.default_args, p.default_checks, p.metrics, p.include_files) == ((), (), (), ())
    assert p.uses_parent_pgrp is False
    assert p.known_flags is None


def test_full_payload() -> None:
    p = declare_payload(
        into=Declarations(),
        name="schbench-json",
        kind="schbench",
        output=OutputFormat.JSON,
        default_args=["-m", "2"],
        default_checks=[MetricCheck.exit_code_eq(0), MetricCheck.min("rps", 10)],
        metrics=[MetricHint(name="p99_us", unit="us", polarity="lower_better")],
        include_files=["data/a.bin"],
        uses_parent_pgrp=True,
        known_flags=["-m", "-t"],
    )
    assert p.kind == PayloadKind.binary("schbench")
    assert p.metrics[0].polarity is Polarity.LOWER_BETTER
    assert p.args_with(["-t", "4"]) == ["-m", "2", "-t", "4"]
    assert p.checks_with([MetricCheck.exists("p50_us")])[-1] == MetricCheck.exists("p50_us")
    assert len(p.checks_with()) == 2
    assert p.known_flags == ("-m", "-t")


def test_scheduler_kind() -> None:
    kind = PayloadKind.of_scheduler(EEVDF)
    assert kind.scheduler is EEVDF
    assert PayloadKind.model_validate(EEVDF) == kind
    assert Payload(name="kernel-default", kind=kind).executable is None


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda: PayloadKind(tag="binary"), "a binary payload needs an executable"),
        (lambda: PayloadKind(tag="scheduler"), "a scheduler payload needs a scheduler"),
        (
            lambda: PayloadKind(tag="binary", executable="x", scheduler=EEVDF),
            "takes an executable, not a scheduler",
        ),
        (
            lambda: PayloadKind(tag="scheduler", executable="x", scheduler=EEVDF),
            "takes a scheduler, not an executable",
        ),
    ],
)
def test_bad_kinds(make: object, rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        make()  # type: ignore[operator]


def test_metric_check_constructors() -> None:
    assert MetricCheck.min("rps", 10).describe() == "rps >= 10.0"
    assert MetricCheck.max("lat", 5).describe() == "lat <= 5.0"
    assert MetricCheck.range("x", 1, 2).describe() == "1.0 <= x <= 2.0"
    assert MetricCheck.exists("x").describe() == "x exists"
    assert MetricCheck.exit_code_eq(0).describe() == "exit code == 0"


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"kind": "min", "metric": "x"}, "min needs a lower bound"),
        ({"kind": "max", "metric": "x"}, "max needs an upper bound"),
        ({"kind": "range", "metric": "x", "low": 1}, "range needs both bounds"),
        ({"kind": "range", "metric": "x", "low": 3, "high": 1}, "range bounds are reversed"),
        ({"kind": "exists"}, "the exists check needs a metric name"),
        ({"kind": "exit_code_eq"}, "exit_code_eq needs a code"),
        ({"kind": "median", "metric": "x"}, "kind"),
    ],
)
def test_bad_metric_checks(fields: dict[str, object], rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        MetricCheck.model_validate(fields)


def test_metric_hint_defaults_and_polarity() -> None:
    assert MetricHint(name="x").polarity is Polarity.NEUTRAL
    with pytest.raises(ValidationError, match="polarity"):
        MetricHint(name="x", polarity="sideways")
    with pytest.raises(ValidationError, match="name"):
        MetricHint(name="")


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"kind": "x"}, "name: is required"),
        ({"name": "p"}, "kind: is required"),
        ({"name": "a b", "kind": "x"}, "name: 'a b' is invalid: a payload name starts with"),
        ({"name": "p", "kind": "x", "default_args": "-v"}, "default_args: '-v' is invalid"),
        ({"name": "p", "kind": "x", "output": "xml"}, "output: 'xml' is invalid"),
        (
            {"name": "p", "kind": "x", "default_checks": [{"kind": "min", "metric": "a"}]},
            "default_checks[0]: ",
        ),
    ],
)
def test_declare_payload_rejects_with_readable_lines(fields: dict[str, object], line: str) -> None:
    with pytest.raises(DeclarationError) as info:
        declare_payload(into=Declarations(), **fields)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(line)
    assert "errors.pydantic.dev" not in str(info.value)
