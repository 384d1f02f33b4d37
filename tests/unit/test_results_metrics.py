"""Payload metrics parsing and MetricCheck evaluation (pure)."""

from __future__ import annotations

from ktstr.declare.payload import MetricCheck, OutputFormat
from ktstr.results.metrics import evaluate, flatten_numbers, parse_metrics

STRESS_NG_YAML = """\
---
system-info:
      stress-ng-version: 0.15.06
metrics:
    - stressor: cpu
      bogo-ops: 244
      bogo-ops-per-second-real-time: 80.038113
      wall-clock-time: 3.048548
...
"""


def test_json_numeric_leaves_are_flattened() -> None:
    assert flatten_numbers({"a": {"b": 1, "c": [2, {"d": 3.5}]}, "s": "x", "t": True}) == {
        "a.b": 1.0, "a.c.0": 2.0, "a.c.1.d": 3.5}


def test_parse_by_output_format() -> None:
    assert parse_metrics(OutputFormat.JSON, '{"lat": {"p99": 12}}', {}) == {"lat.p99": 12.0}
    assert parse_metrics(OutputFormat.JSON, "not json", {}) == {}
    m = parse_metrics(OutputFormat.STRESS_NG_YAML, "", {"payload_yaml": STRESS_NG_YAML})
    assert m["cpu.bogo_ops"] == 244.0 and m["bogo_ops_per_second_real_time"] == 80.038113
    assert parse_metrics(OutputFormat.TEXT, "Running...\nTime: 10.435\n", {}) == {"time_s": 10.435}
    assert parse_metrics(OutputFormat.EXIT_CODE, "whatever", {}) == {}


def test_checks_pass_and_fail_with_values() -> None:
    metrics = {"bogo_ops": 244.0}
    out = evaluate([MetricCheck.exit_code_eq(0), MetricCheck.min("bogo_ops", 100),
                    MetricCheck.max("bogo_ops", 100), MetricCheck.range("bogo_ops", 1, 300),
                    MetricCheck.exists("nope"), MetricCheck.min("missing", 1)],
                   metrics, exit_code=0)
    assert [c.passed for c in out] == [True, True, False, True, False, False]
    assert out[2].detail == "bogo_ops = 244" and out[2].threshold == 100
    assert "missing" in out[5].detail
    assert not evaluate([MetricCheck.exit_code_eq(0)], {}, exit_code=2)[0].passed
