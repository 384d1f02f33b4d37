"""Payload metrics (parsed from the payload's output) and ``MetricCheck`` evaluation."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ktstr.declare.payload import (
    ExistsCheck,
    ExitCodeCheck,
    MaxCheck,
    MetricCheck,
    MinCheck,
    OutputFormat,
    RangeCheck,
)
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


_CT_SUMMARY = re.compile(r"^# (Total|Min Latencies|Avg Latencies|Max Latencies|"
                         r"Histogram Overflows):\s*(.*)$", re.MULTILINE)
_CT_BUCKET = re.compile(r"^(\d+)((?:\s+\d+)+)\s*$")
#: percentiles cyclictest metrics report, as (metric suffix, quantile)
CYCLICTEST_PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999))


def parse_cyclictest(stdout: str) -> dict[str, float]:
    """cyclictest ``-q -h N`` output: ``latency_{min,avg,max}_us`` over all threads,
    ``latency_{p50,p90,p99,p999}_us`` from the summed histogram (1 us buckets; a
    percentile past the histogram's end, among the overflows, is the maximum), and
    ``samples`` / ``overflows``."""
    summary: dict[str, list[int]] = {}
    for m in _CT_SUMMARY.finditer(stdout):
        summary[m.group(1)] = [int(x) for x in m.group(2).split()]
    counts: dict[int, int] = {}
    in_hist = False
    for line in stdout.splitlines():
        if line.startswith("# Histogram"):
            in_hist = True
            continue
        if line.startswith("#"):
            in_hist = False if line.startswith("# Total") else in_hist
            continue
        bucket = _CT_BUCKET.match(line) if in_hist else None
        if bucket:
            counts[int(bucket.group(1))] = counts.get(int(bucket.group(1)), 0) + sum(
                int(x) for x in bucket.group(2).split())
    totals, overflows = summary.get("Total", []), summary.get("Histogram Overflows", [])
    mins, avgs, maxs = (summary.get(k, []) for k in ("Min Latencies", "Avg Latencies",
                                                     "Max Latencies"))
    if not (mins and avgs and maxs):
        return {}
    per_thread = [t + (overflows[i] if i < len(overflows) else 0)
                  for i, t in enumerate(totals)] or [1] * len(avgs)
    n = sum(per_thread)
    out: dict[str, float] = {
        "latency_min_us": float(min(mins)), "latency_max_us": float(max(maxs)),
        "latency_avg_us": float(sum(a * w for a, w in zip(avgs, per_thread, strict=False))
                                / n) if n else float(sum(avgs) / len(avgs)),
        "samples": float(n), "overflows": float(sum(overflows)),
    }
    if n and counts:
        for suffix, q in CYCLICTEST_PERCENTILES:
            need, seen, value = q * n, 0, float(max(maxs))
            for us in sorted(counts):
                seen += counts[us]
                if seen >= need:
                    value = float(us)
                    break
            out[f"latency_{suffix}_us"] = value
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
    if output is OutputFormat.CYCLICTEST:
        return parse_cyclictest(stdout)
    if output is OutputFormat.TEXT:
        m = _HACKBENCH_TIME.search(stdout)
        return {"time_s": float(m.group(1))} if m else {}
    return {}


def with_exit_check(checks: Sequence[MetricCheck]) -> list[MetricCheck]:
    """A payload's checks; without an ``exit_code_eq`` of its own, exit code 0 is
    expected (a payload that failed, or was not found, does not pass unnoticed)."""
    out = list(checks)
    if not any(isinstance(c, ExitCodeCheck) for c in out):
        out.append(MetricCheck.exit_code_eq(0))
    return out


def evaluate(checks: Sequence[MetricCheck], metrics: Mapping[str, float],
             exit_code: int | None) -> list[CheckOutcome]:
    out: list[CheckOutcome] = []
    for c in checks:
        name = f"payload: {c.describe()}"
        match c:
            case ExitCodeCheck():
                out.append(CheckOutcome(name=name, passed=exit_code == c.code, value=exit_code,
                                        threshold=c.code, detail=f"exit code {exit_code}"))
            case ExistsCheck():
                present = metrics.get(c.metric) is not None
                out.append(CheckOutcome(name=name, passed=present,
                                        detail="present" if present else
                                        f"metric {c.metric!r} missing; have: "
                                        f"{', '.join(sorted(metrics)[:10]) or 'none'}"))
            case MinCheck() | MaxCheck() | RangeCheck():
                value = metrics.get(c.metric)
                if value is None:
                    out.append(CheckOutcome(name=name, passed=False,
                                            detail=f"metric {c.metric!r} missing"))
                    continue
                low = None if isinstance(c, MaxCheck) else c.low
                high = None if isinstance(c, MinCheck) else c.high
                ok = (low is None or value >= low) and (high is None or value <= high)
                out.append(CheckOutcome(name=name, passed=ok, value=value,
                                        threshold=low if isinstance(c, MinCheck) else high,
                                        detail=f"{c.metric} = {value:g}"))
            case _:
                raise TypeError(f"no evaluation for the check {c!r}")
    return out
