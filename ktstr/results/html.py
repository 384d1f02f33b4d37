"""``ktstr report``: one self-contained HTML file (inline CSS and SVG, no script, no
network) from comparisons, runs, pytest sidecars (the gauntlet matrix) and verifier
sweeps. Loading decides what each input is; rendering is pure. The page's layout,
style and a run's detail are ``views``', which the service's dashboard shares.

Needs the ``compare`` extra (matplotlib, scipy).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from ktstr.compare.model import Comparison, MetricComparison, MetricOutcome
from ktstr.compare.render import OUTCOME_ORDER, fmt_p, fmt_ratio, fmt_value, headline
from ktstr.declare.base import Frozen
from ktstr.errors import UserError
from ktstr.results import plots, views
from ktstr.results.metricdefs import MetricKind
from ktstr.results.model import Repro, RunResult
from ktstr.sweep.runner import CellResult

#: distributions drawn per comparison (the most telling first: worse, better, ...)
MAX_DISTRIBUTIONS = 12
#: runs drawn one by one (per-cgroup bars)
MAX_RUN_PLOTS = 12
#: runs shown in detail (timeline, logs, debug dump); every run that did not pass is
MAX_RUN_DETAILS = 50
#: failure timelines drawn (one per traced rerun)
MAX_TRACE_PLOTS = 12


class LabelledRun(Frozen):
    label: str
    result: RunResult


class Report(Frozen):
    title: str = "ktstr report"
    sources: list[str] = Field(default_factory=list)
    comparisons: list[Comparison] = Field(default_factory=list)
    runs: list[LabelledRun] = Field(default_factory=list)
    sidecars: list[dict[str, Any]] = Field(default_factory=list)
    verifier: list[CellResult] = Field(default_factory=list)


# ---- loading -------------------------------------------------------------------------

def _doc(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read JSON: {exc}") from exc


def _add_doc(parts: dict[str, list[Any]], data: Any, path: Path) -> None:
    from ktstr.compare.sources import runs_from_json

    if isinstance(data, dict) and data.get("kind") == "comparison":
        body = {k: v for k, v in data.items() if k != "kind"}
        parts["comparisons"].append(Comparison.model_validate(body))
    elif isinstance(data, dict) and data.get("kind") == "verifier" and "cells" in data:
        parts["verifier"] += [CellResult.model_validate(c) for c in data["cells"]]
    elif isinstance(data, dict) and data.get("kind") == "verifier" and "id" in data:
        parts["verifier"].append(CellResult.model_validate(data))
    elif isinstance(data, dict) and isinstance(data.get("runs"), list) and "test" in data:
        parts["sidecars"].append(data)
    elif isinstance(data, dict) and data.get("kind") == "comparison-request":
        return
    else:
        for r in runs_from_json(data, str(path)):
            parts["runs"].append(LabelledRun(label=Path(r.source).name, result=r.result))


def load_report(paths: Sequence[Path], *, title: str = "ktstr report") -> Report:
    """What each path holds: a compare directory (its comparison.json), a sweep
    directory (cells/*.json) or verifier ``--json`` file, a pytest results directory
    (sidecars), or run results (``ktstr run --json`` files or directories of them)."""
    parts: dict[str, list[Any]] = {"comparisons": [], "runs": [], "sidecars": [],
                                   "verifier": []}
    for path in paths:
        if not path.exists():
            raise UserError(f"{path}: no such file or directory")
        if path.is_file():
            _add_doc(parts, _doc(path), path)
            continue
        if (path / "comparison.json").is_file():
            _add_doc(parts, _doc(path / "comparison.json"), path)
            continue
        files = sorted((path / "cells").glob("*.json")) if (path / "cells").is_dir() \
            else sorted(path.glob("*.json"))
        if not files:
            raise UserError(f"{path}: no result files in it")
        for f in files:
            _add_doc(parts, _doc(f), f)
    return Report(title=title, sources=[str(p) for p in paths], **parts)


# ---- views (pure) ----------------------------------------------------------------------

def _telling(c: Comparison) -> list[MetricComparison]:
    sched = [m for m in c.metrics if m.kind is not MetricKind.HARNESS]
    return sorted(sched, key=lambda m: (OUTCOME_ORDER.index(m.outcome),
                                        -(abs(m.change_pct or 0.0)), m.name))


def comparison_view(c: Comparison) -> dict[str, Any]:
    telling = _telling(c)
    rows = [{"name": m.name, "unit": m.unit, "a": fmt_value(m.median_a),
             "b": fmt_value(m.median_b), "ratio": fmt_ratio(m), "p": fmt_p(m.p),
             "p_adj": fmt_p(m.p_adj), "outcome": m.outcome.value,
             "css": m.outcome.name.lower(), "why": m.why, "polarity": m.polarity.value,
             "need": m.runs_needed if m.outcome is MetricOutcome.INCONCLUSIVE else None,
             "harness": m.kind is MetricKind.HARNESS}
            for m in [*telling, *[m for m in c.metrics if m.kind is MetricKind.HARNESS]]]
    return {
        "c": c, "headline": headline(c), "rows": rows,
        "forest": plots.forest(c, telling) if telling else None,
        "dists": plots.distributions(c, telling[:MAX_DISTRIBUTIONS]) if telling else None,
        "cgroups": plots.cgroup_bars_from_comparison(c),
    }


def _test_name(sidecar: dict[str, Any]) -> str:
    return str(sidecar.get("test", "")).split("::", 1)[-1].split("[", 1)[0]


def gauntlet_views(sidecars: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per test function: preset (or topology) x flags · kernel, coloured by verdict."""
    out: list[dict[str, Any]] = []
    for name in sorted({_test_name(s) for s in sidecars}):
        mine = [s for s in sidecars if _test_name(s) == name]
        entries: list[views.MatrixEntry] = []
        for s in mine:
            kernel = (s.get("kernel") or {}).get("version") or \
                (s.get("kernel") or {}).get("spec") or "?"
            verdict = str(s.get("verdict") or "")
            entries.append(views.MatrixEntry(
                row=str(s.get("preset") or s.get("topology_requested") or "?"),
                column=f"{s.get('flags') or 'default'} · {kernel}",
                label=verdict or "-", css=views.verdict_css(verdict)))
        out.append({"name": name, "svg": plots.verdict_matrix(views.verdict_matrix(
            entries, title=f"{name}: verdict per preset x flags · kernel",
            column_label="flag profile · kernel", row_label="preset / topology",
            sort=True)),
            "rows": [{"test": str(s.get("test", "")).split("::", 1)[-1],
                      "verdict": (s.get("verdict") or "-")
                      + (" (flaky)" if s.get("flaky") else ""),
                      "css": str(s.get("verdict") or "none"),
                      "reasons": "; ".join(s.get("reasons") or [])} for s in mine]})
    return out


def verifier_views(cells: Sequence[CellResult]) -> list[dict[str, Any]]:
    """Per scheduler: verified instructions per program by kernel / topology, and the
    kernel x topology pass grid."""
    from ktstr.sweep.verifier import VerifierDetail

    details = [(r, VerifierDetail.model_validate(r.detail)) for r in cells if r.detail]
    out: list[dict[str, Any]] = []
    for sched in sorted({d.scheduler for _, d in details}):
        mine = [(r, d) for r, d in details if d.scheduler == sched]
        progs = sorted({p.name for _, d in mine for p in d.programs})
        series: dict[str, list[float | None]] = {}
        for _, d in sorted(mine, key=lambda rd: (rd[1].kernel, rd[1].preset)):
            label = f"{d.kernel} · {d.preset}"
            series[label] = [float(p.verified_insns) if (p := d.program(n)) else None
                             for n in progs]
        grid = views.verdict_matrix(
            [views.MatrixEntry(row=d.kernel, column=d.preset, label=r.outcome.value,
                               css=views.verdict_css(r.outcome.value)) for r, d in mine],
            title=f"{sched}: verifier cells", column_label="topology preset",
            row_label="kernel", sort=True)
        out.append({
            "scheduler": sched,
            "bars": plots.grouped_bars(progs, series, title=f"{sched}: verified instructions "
                                       "per program, by kernel · topology",
                                       ylabel="verified instructions (log)", log=True)
            if progs else None,
            "grid": plots.verdict_matrix(grid),
            "failures": [{"id": r.id, "reasons": "; ".join(r.reasons)} for r, _ in mine
                         if r.outcome.value != "pass"],
        })
    return out


def run_views(runs: Sequence[LabelledRun]) -> list[dict[str, Any]]:
    out = []
    for k, lr in enumerate(runs):
        r = lr.result
        out.append({"label": lr.label, "summary": r.summary_line(),
                    "verdict": r.verdict.value,
                    "detail": views.run_detail(r) if k < MAX_RUN_DETAILS or not r.passed
                    else None,
                    "svg": plots.cgroup_bars_from_run(r.stats, lr.label)
                    if k < MAX_RUN_PLOTS else None})
    return out


def _repro_view(label: str, repro: Repro) -> dict[str, Any] | None:
    tr = repro.trace
    if tr is None:
        return None
    stalled = (f"{tr.stalled.comm}[{tr.stalled.pid}]" if tr.stalled is not None else "")
    return {"label": label, "status": repro.status.value,
            "css": "fail" if repro.status.value == "reproduced" else "error",
            "first": repro.first_class.value,
            "rerun": repro.repro_verdict.value + (f" ({repro.repro_class.value})"
                                                  if repro.repro_class else ""),
            "json_path": tr.json_path, "text_path": tr.text_path, "stalled": stalled,
            "reasons": "; ".join(repro.reasons),
            "svg": plots.cpu_timeline(tr.window, title=f"{label}: the last "
                                      f"{tr.window.end - tr.window.start:.0f} s before the "
                                      "failure, per CPU (traced rerun)")
            if tr.window is not None else None}


def trace_views(runs: Sequence[LabelledRun], sidecars: Sequence[dict[str, Any]]
                ) -> list[dict[str, Any]]:
    """Every traced rerun of a failed run: its status and a per-CPU timeline of the last
    seconds before the failure, the stalled task highlighted."""
    found: list[tuple[str, Repro]] = [(lr.label, lr.result.repro) for lr in runs
                                      if lr.result.repro is not None]
    for sc in sidecars:
        for run in sc.get("runs") or []:
            if isinstance(run, dict) and isinstance(run.get("repro"), dict):
                found.append((str(sc.get("test", "")).split("::", 1)[-1],
                              Repro.model_validate(run["repro"])))
    drawn = [_repro_view(label, rp) for label, rp in found[:MAX_TRACE_PLOTS]]
    return [v for v in drawn if v is not None]


def render(report: Report) -> str:
    """The page (pure: the same report gives the same bytes)."""
    return views.environment().get_template("report.html.j2").render(
        title=report.title, sources=report.sources,
        comparisons=[comparison_view(c) for c in report.comparisons],
        runs=run_views(report.runs), gauntlets=gauntlet_views(report.sidecars),
        traces=trace_views(report.runs, report.sidecars),
        verifiers=verifier_views(report.verifier))


def write_report(path: Path, report: Report) -> Path:
    if not (report.comparisons or report.runs or report.sidecars or report.verifier):
        raise UserError("nothing to report: no comparison, run, sidecar or verifier result")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(report), encoding="utf-8")
    tmp.replace(path)
    return path


def report_of(paths: Iterable[Path], out: Path, *, title: str = "ktstr report") -> Path:
    return write_report(out, load_report(list(paths), title=title))
