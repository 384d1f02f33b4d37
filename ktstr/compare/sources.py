"""Result sets read back from disk: ``ktstr run --json`` files, ``ktstr compare`` run
directories, pytest sidecar directories (``*.ktstr.json``), or lists of results.

A *group* names which test a run belongs to (a sidecar's test id, without the file
part). Runs of different tests measure different things, so their metrics are compared
per group (``test_x[1n1l1c1t]: work.units``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ktstr.declare.base import Frozen
from ktstr.errors import UserError
from ktstr.results.model import RunResult


class LoadedRun(Frozen):
    result: RunResult
    group: str = ""
    source: str = ""


def _is_result(data: Any) -> bool:
    return isinstance(data, dict) and "verdict" in data and "scheduler" in data \
        and "runs" not in data


def _is_sidecar(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("runs"), list) and "test" in data


def runs_from_json(data: Any, source: str) -> list[LoadedRun]:
    """The runs in one parsed JSON document (pure); ``UserError`` when it holds none."""
    try:
        if _is_result(data):
            return [LoadedRun(result=RunResult.model_validate(data), source=source)]
        if _is_sidecar(data):
            group = str(data["test"]).split("::", 1)[-1]
            return [LoadedRun(result=RunResult.model_validate(r), group=group, source=source)
                    for r in data["runs"]]
        if isinstance(data, list) and all(_is_result(x) for x in data):
            return [LoadedRun(result=RunResult.model_validate(x), source=source) for x in data]
    except ValidationError as exc:
        raise UserError(f"{source}: not a ktstr result: {str(exc).splitlines()[0]}") from exc
    raise UserError(f"{source}: not a ktstr result (expected `ktstr run --json` output, a "
                    "pytest sidecar *.ktstr.json, or a list of results)")


def _skip(data: Any) -> bool:
    """Documents in a result directory that are not runs (a comparison, a summary)."""
    return isinstance(data, dict) and data.get("kind") in _NOT_RUNS


_NOT_RUNS = ("comparison", "comparison-request", "verifier", "gauntlet")


def load_runs(path: Path) -> list[LoadedRun]:
    """Every run in a file or in the ``*.json`` files of a directory (sorted by name)."""
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    out: list[LoadedRun] = []
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{f}: cannot read JSON: {exc}") from exc
        if path.is_dir() and _skip(data):
            continue
        out += runs_from_json(data, str(f))
    if not out:
        raise UserError(f"{path}: no results in it")
    return out


def load_side(paths: Iterable[Path]) -> list[LoadedRun]:
    out: list[LoadedRun] = []
    for p in paths:
        out += load_runs(p)
    return out


def describe_side(runs: Sequence[LoadedRun]) -> str:
    """``scx_simple on 7.2.13, 1n1l4c1t`` from the runs' own facts."""
    def uniq(values: Iterable[str]) -> str:
        seen = sorted({v for v in values if v})
        return "/".join(seen) if seen else "?"
    rs = [r.result for r in runs]
    args = uniq(" ".join(r.sched_args) for r in rs)
    return (f"{uniq(r.scheduler for r in rs)}"
            + (f" [{args}]" if args != "?" else "")
            + f" on {uniq(r.kernel.version for r in rs)}, "
            + f"{uniq(r.topology_requested for r in rs)}"
            + f", {uniq(r.workload for r in rs)}")


def side_labels(a: Sequence[LoadedRun], b: Sequence[LoadedRun],
                fallback: tuple[str, str]) -> tuple[str, str]:
    """Names for the two sides from what differs between their runs (the scheduler,
    else its arguments, else the kernel); ``fallback`` (the paths) when nothing does."""
    def one(values: Iterable[str]) -> str | None:
        seen = set(values)
        return seen.pop() if len(seen) == 1 else None
    for get in (lambda r: r.result.scheduler, lambda r: " ".join(r.result.sched_args),
                lambda r: r.result.kernel.version):
        la, lb = one(get(r) for r in a), one(get(r) for r in b)
        if la and lb and la != lb:
            return la, lb
    return fallback
