"""Payload metrics (parsed from the payload's output) and ``MetricCheck`` evaluation."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ktstr.declare.payload import CheckKind, MetricCheck, OutputFormat
from ktstr.results.model import CheckOutcome
from ktstr.run.stats import parse_stress_ng_yaml

_HACKBENCH_TIME = re.compile(r"^Time:\s*([0-9.]+)", re.MULTILINE)


def flatten_numbers(data: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a JSON value as ``a.b.c`` (list items as ``a.0.b``)."""
    out: dict[str, float] = {}
    if isinstance(data, bool):
        return out
    if isinstance(data, int | float):
        out[prefix or "value"] = float(data)
    elif isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten_numbers(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.update(flatten_numbers(v, f"{prefix}.{i}" if prefix else str(i)))
    return out


def parse_metrics(output: OutputFormat, stdout: str, extra: Mapping[str, str]) -> dict[str, float]:
    """Metrics a payload printed, by its declared output format."""
    if output is OutputFormat.JSON:
        try:
            return flatten_numbers(json.loads(stdout))
        except json.JSONDecodeError:
            return {}
    if output is OutputFormat.STRESS_NG_YAML:
        metrics: dict[str, float] = {}
        for stressor, values in parse_stress_ng_yaml(extra.get("payload_yaml", "")).items():
            for name, value in values.items():
                metrics[f"{stressor}.{name}"] = value
                metrics.setdefault(name, value)
        return metrics
    if output is OutputFormat.TEXT:
        m = _HACKBENCH_TIME.search(stdout)
        return {"time_s": float(m.group(1))} if m else {}
    return {}


def evaluate(checks: Sequence[MetricCheck], metrics: Mapping[str, float],
             exit_code: int | None) -> list[CheckOutcome]:
    out: list[CheckOutcome] = []
    for c in checks:
        name = f"payload: {c.describe()}"
        if c.kind is CheckKind.EXIT_CODE_EQ:
            ok = exit_code == c.code
            out.append(CheckOutcome(name=name, passed=ok, value=exit_code,
                                    threshold=c.code, detail=f"exit code {exit_code}"))
            continue
        assert c.metric is not None
        value = metrics.get(c.metric)
        if c.kind is CheckKind.EXISTS:
            out.append(CheckOutcome(name=name, passed=value is not None,
                                    detail="present" if value is not None else
                                    f"metric {c.metric!r} missing; have: "
                                    f"{', '.join(sorted(metrics)[:10]) or 'none'}"))
            continue
        if value is None:
            out.append(CheckOutcome(name=name, passed=False,
                                    detail=f"metric {c.metric!r} missing"))
            continue
        ok = (c.low is None or value >= c.low) and (c.high is None or value <= c.high)
        out.append(CheckOutcome(name=name, passed=ok, value=value,
                                threshold=c.low if c.kind is CheckKind.MIN else c.high,
                                detail=f"{c.metric} = {value:g}"))
    return out
