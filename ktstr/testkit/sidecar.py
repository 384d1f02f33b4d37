"""Sidecar JSON per test variant, and the session summary read back from them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ktstr.results.model import RunResult
from ktstr.testkit.variants import Variant

SUFFIX = ".ktstr.json"


def sidecar_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("_")[:200] + SUFFIX


def sidecar_data(nodeid: str, variant: Variant, results: list[RunResult],
                 outcome: str, message: str) -> dict[str, Any]:
    last = results[-1] if results else None
    return {
        "test": nodeid,
        "variant": variant.id,
        "outcome": outcome,
        "message": message,
        "gauntlet": variant.gauntlet,
        "preset": variant.preset,
        "topology_requested": variant.topology.label,
        "topology_seen": last.topology_seen if last else None,
        "flags": variant.flags.name,
        "kernel": last.kernel.model_dump(mode="json") if last else {"spec": variant.kernel.spec},
        "scheduler": last.scheduler if last else None,
        "verdict": last.verdict.value if last else None,
        "reasons": last.reasons if last else [],
        "checks": [c.model_dump(mode="json") for c in last.checks] if last else [],
        "stats": last.stats if last else {},
        "timings": last.timings.model_dump(mode="json") if last else {},
        "console_path": last.console_path if last else None,
        "run_dir": last.run_dir if last else None,
        "reproducer": last.reproducer if last else None,
        "runs": [r.model_dump(mode="json", exclude={"console_tail", "sched_log"})
                 for r in results],
    }


def write_sidecar(results_dir: Path, data: dict[str, Any]) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / sidecar_name(str(data["test"]))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def read_sidecars(results_dir: Path, since: float = 0.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not results_dir.is_dir():
        return out
    for path in sorted(results_dir.glob("*" + SUFFIX)):
        if path.stat().st_mtime < since:
            continue
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out
