"""Running A and B: the dimension they differ in (pure), and the interleaved runs
A, B, A, B, ... through ``run_scheduler``, as many at once as the CPU budget holds.

Interleaving spreads slow drifts of the host (another job starting, thermal, page
cache) evenly over both sides instead of loading them onto whichever ran second.
Every VM still takes its tokens from the machine-wide budget (``ktstr.vm.budget``) when
it boots, so a compare running beside a pytest session shares the host fairly.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ktstr.declare.base import Frozen
from ktstr.declare.spec import PathSpec
from ktstr.errors import KtstrError, UserError
from ktstr.results.model import RunResult, Verdict
from ktstr.run.request import RunRequest
from ktstr.vm.budget import cpu_budget

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def _noop(_: str) -> None:
    return None


class Difference(Frozen):
    dimension: str
    a: str
    b: str


def differences(a: RunRequest, b: RunRequest) -> list[Difference]:
    """The dimensions A and B differ in, among: scheduler, scheduler arguments (extra
    args, flag profile), scheduler binary, kernel, sysctls (pure)."""
    out: list[Difference] = []
    sa, sb = a.scheduler, b.scheduler
    if sa.name != sb.name:
        out.append(Difference(dimension="scheduler", a=sa.name, b=sb.name))
    if a.sched_args != b.sched_args:
        out.append(Difference(dimension="scheduler args", a=" ".join(a.sched_args) or "(none)",
                              b=" ".join(b.sched_args) or "(none)"))
    if sa.name == sb.name and sa.binary != sb.binary:
        out.append(Difference(dimension="scheduler binary", a=_binary(a), b=_binary(b)))
    if (a.kernel or "") != (b.kernel or ""):
        out.append(Difference(dimension="kernel", a=a.kernel or "(default)",
                              b=b.kernel or "(default)"))
    if sa.sysctls != sb.sysctls:
        out.append(Difference(dimension="sysctls",
                              a=" ".join(f"{s.key}={s.value}" for s in sa.sysctls) or "(none)",
                              b=" ".join(f"{s.key}={s.value}" for s in sb.sysctls) or "(none)"))
    return out


def _binary(r: RunRequest) -> str:
    spec = r.scheduler.binary
    if isinstance(spec, PathSpec):
        return spec.binary_path
    return spec.binary_name or spec.kind.value


_SAME_FIELDS = ("topology", "duration_s", "workload", "workers", "payload", "payload_args",
                "scenario", "checks", "memory_mb", "accel", "inline_config", "include_files")


def check_one_dimension(a: RunRequest, b: RunRequest) -> list[Difference]:
    """``UserError`` unless A and B differ in at most one dimension and run the same
    workload on the same topology; returns the difference (empty for an A/A run)."""
    same = [f for f in _SAME_FIELDS if getattr(a, f) != getattr(b, f)]
    if same:
        raise UserError(f"A and B must run the same workload on the same topology; they "
                        f"differ in {', '.join(same)}")
    diff = differences(a, b)
    if len(diff) > 1:
        raise UserError("A and B differ in " + ", ".join(d.dimension for d in diff)
                        + ": compare one dimension at a time (scheduler, scheduler args, "
                        "scheduler binary, kernel or sysctls)")
    return diff


def interleaved(runs: int) -> list[tuple[str, int]]:
    """``[("a", 1), ("b", 1), ("b", 2), ("a", 2), ("a", 3), ...]`` (pure): pairs whose
    first run alternates (ABBA), so an order effect lands on both sides alike. With A
    always first, the second run of each pair found the snapshot A had just read in the
    page cache, and an A/A comparison called B's restore significantly faster."""
    return [(side, i) for i in range(1, runs + 1)
            for side in (("a", "b") if i % 2 else ("b", "a"))]


def parallel_slots(vcpus: int, budget: int) -> int:
    """How many VMs of ``vcpus`` fit in the budget at once (at least one)."""
    return max(1, budget // max(1, min(vcpus, budget)))


def _error_result(request: RunRequest, exc: Exception) -> RunResult:
    return RunResult(verdict=Verdict.ERROR, scheduler=request.scheduler.name,
                     reasons=[f"{type(exc).__name__}: {exc}"],
                     topology_requested=request.topology.label, duration_s=request.duration_s)


def run_pair(a: RunRequest, b: RunRequest, *, runs: int, out_dir: Path,
             progress: Progress = _noop, parallel: int | None = None,
             run: Callable[[RunRequest], RunResult] | None = None
             ) -> tuple[list[RunResult], list[RunResult]]:
    """Run A and B ``runs`` times each, interleaved; each result is written to
    ``out_dir/a/run-NN.json`` (``b/``) the moment it finishes. A harness error in one
    run is that run's ERROR result; a ``UserError`` stops everything."""
    if runs < 1:
        raise UserError(f"--runs {runs}: give at least 1")
    if run is None:
        from ktstr.run.execute import run_scheduler

        run = run_scheduler
    slots = parallel or parallel_slots(a.topology.total_cpus, cpu_budget())
    for side in ("a", "b"):
        (out_dir / side).mkdir(parents=True, exist_ok=True)
    results: dict[tuple[str, int], RunResult] = {}
    lock = threading.Lock()
    order = interleaved(runs)

    def one(side: str, i: int) -> None:
        request = a if side == "a" else b
        req = request.model_copy(update={"run_dir": None})
        try:
            r = run(req)
        except UserError:
            raise
        except KtstrError as exc:
            r = _error_result(req, exc)
        path = out_dir / side / f"run-{i:02d}.json"
        path.write_text(r.model_dump_json(indent=2) + "\n", encoding="utf-8")
        with lock:
            results[(side, i)] = r
            done = len(results)
        progress(f"[{done}/{len(order)}] {side.upper()} run {i}: {r.verdict.value.upper()}"
                 + (f" ({'; '.join(r.reasons)[:120]})" if r.reasons else ""))

    progress(f"{runs} runs each of A and B, interleaved, up to {slots} at once; "
             f"results in {out_dir}")
    with ThreadPoolExecutor(max_workers=slots) as pool:
        futures = [pool.submit(one, side, i) for side, i in order]
        try:
            for f in futures:
                f.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return ([results[("a", i)] for i in range(1, runs + 1)],
            [results[("b", i)] for i in range(1, runs + 1)])


def write_requests(out_dir: Path, a: RunRequest, b: RunRequest,
                   diff: Sequence[Difference]) -> None:
    """What was asked, beside the results (for the report and for a rerun)."""
    doc = {"kind": "comparison-request",
           "difference": [d.model_dump() for d in diff],
           "a": {"scheduler": a.scheduler.name, "args": a.sched_args, "kernel": a.kernel,
                 "reproducer": a.reproducer()},
           "b": {"scheduler": b.scheduler.name, "args": b.sched_args, "kernel": b.kernel,
                 "reproducer": b.reproducer()}}
    (out_dir / "request.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
