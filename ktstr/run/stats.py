"""Workload statistics from what the guest sent (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ktstr.guest.protocol import Event


def parse_stress_ng_yaml(text: str) -> dict[str, dict[str, float]]:
    """stress-ng ``--yaml`` metrics: stressor -> {metric: value}."""
    import yaml  # only stress-ng payloads need it: not on every run's import path

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    out: dict[str, dict[str, float]] = {}
    if not isinstance(data, dict):
        return out
    for item in data.get("metrics", []) or []:
        if not isinstance(item, dict) or "stressor" not in item:
            continue
        out[str(item["stressor"])] = {
            str(k).replace("-", "_"): float(v)
            for k, v in item.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
    return out


def workload_stats(events: Sequence[Event], blobs: Mapping[str, str]) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for e in events:
        if e.name == "workload_stopped":
            try:
                stats["workload_status"] = int(e.fields.get("status", "0"))
            except ValueError:
                stats["workload_status"] = None
    if "stress_ng_yaml" in blobs:
        stats["stress_ng"] = parse_stress_ng_yaml(blobs["stress_ng_yaml"])
    if "workload_log" in blobs:
        stats["workload_log_tail"] = "\n".join(blobs["workload_log"].splitlines()[-20:])
    return stats
