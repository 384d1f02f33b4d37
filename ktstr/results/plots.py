"""Plots for the HTML report, as inline SVG text (matplotlib, Agg, text kept as text so
the labels are searchable and crisp). Pure: data in, SVG string out; deterministic (no
dates, fixed ids), so a report of the same results is the same file.

Needs the ``compare`` extra (matplotlib).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ktstr.compare.model import Comparison, MetricComparison
from ktstr.results.trace import TraceWindow
from ktstr.results.views import NO_VERDICT, OUTCOME_COLOURS, VERDICT_COLOURS, VerdictMatrix

#: the two sides of a comparison (outcome and verdict colours are the pages', in views)
A_COLOUR, B_COLOUR = "#4575b4", "#e08214"

_RC: Any = {"svg.fonttype": "none", "svg.hashsalt": "ktstr", "font.size": 9,
       "axes.titlesize": 10, "axes.spines.top": False, "axes.spines.right": False,
       "font.family": "DejaVu Sans"}


def to_svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element (no XML prolog, no metadata: no creation date,
    no creator link)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return _METADATA.sub("", text[text.index("<svg"):])


_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)


def _short(name: str, limit: int = 48) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1):]


def forest(c: Comparison, metrics: Sequence[MetricComparison]) -> str:
    """B/A per metric with its bootstrap interval, coloured by outcome, with the
    ``1 ± min_effect`` band: the whole comparison at a glance."""
    ms = [m for m in metrics if m.ratio is not None]
    with plt.rc_context(_RC):
        fig = plt.figure(figsize=(7.5, 0.8 + 0.26 * max(1, len(ms))))
        ax = fig.add_subplot(1, 1, 1)
        band = c.options.min_effect
        ax.axvspan(1 - band, 1 + band, color="#eeeeee", zorder=0,
                   label=f"±{band:.0%} (minimum effect)")
        ax.axvline(1.0, color="#555555", lw=0.8, zorder=1)
        for y, m in enumerate(reversed(ms)):
            colour = OUTCOME_COLOURS[m.outcome]
            assert m.ratio is not None
            if m.ci_low is not None and m.ci_high is not None:
                ax.plot([m.ci_low, m.ci_high], [y, y], color=colour, lw=2, zorder=2)
            ax.plot([m.ratio], [y], "o", color=colour, ms=5, zorder=3)
        ax.set_yticks(range(len(ms)))
        ax.set_yticklabels([_short(m.name) for m in reversed(ms)])
        ax.set_xlabel(f"median B / median A  (B = {c.b.label}, A = {c.a.label}); "
                      f"{c.options.confidence:.0%} bootstrap interval")
        ax.set_title("B/A per metric, coloured by outcome")
        handles = [Line2D([], [], color=col, marker="o", lw=2, label=o.value)
                   for o, col in OUTCOME_COLOURS.items() if any(m.outcome is o for m in ms)]
        ax.legend(handles=handles, loc="lower right", fontsize=7, frameon=False)
        lo = min([m.ci_low or m.ratio or 1 for m in ms] + [1 - 2 * band])
        hi = max([m.ci_high or m.ratio or 1 for m in ms] + [1 + 2 * band])
        ax.set_xlim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        ax.set_ylim(-0.7, len(ms) - 0.3)
        return to_svg(fig)


def distributions(c: Comparison, metrics: Sequence[MetricComparison], *,
                  columns: int = 3) -> str:
    """Per metric the runs of A and B (points), their medians (bars) and, in the title,
    B/A with its interval and the outcome."""
    ms = list(metrics)
    rows = max(1, math.ceil(len(ms) / columns))
    with plt.rc_context(_RC):
        fig = plt.figure(figsize=(3.2 * columns, 2.5 * rows))
        rng = np.random.default_rng(0)  # jitter only; fixed for a reproducible page
        for k, m in enumerate(ms):
            ax = fig.add_subplot(rows, columns, k + 1)
            for x, values, colour in ((0, m.a, A_COLOUR), (1, m.b, B_COLOUR)):
                xs = x + rng.uniform(-0.12, 0.12, len(values))
                ax.plot(xs, values, "o", color=colour, alpha=0.75, ms=4)
                if values:
                    med = float(np.median(values))
                    ax.plot([x - 0.25, x + 0.25], [med, med], color="#222222", lw=1.6)
            ax.set_xticks([0, 1])
            ax.set_xticklabels([f"A (n={len(m.a)})", f"B (n={len(m.b)})"])
            ax.set_xlim(-0.6, 1.6)
            ax.set_ylabel(m.unit or "value")
            ratio = (f"B/A {m.ratio:.3f}" if m.ratio is not None else "B/A -") + (
                f" [{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.ci_low is not None
                and m.ci_high is not None else "")
            ax.set_title(f"{_short(m.name, 38)}\n{ratio}\n{m.outcome.value}",
                         color=OUTCOME_COLOURS[m.outcome], fontsize=8)
        fig.tight_layout()
        return to_svg(fig)


_CG = re.compile(r"^(?:(?P<group>.*): )?cgroup\.(?P<cg>.+)\.(?P<what>share_pct|wait_pct)$")


def cgroup_bars_from_comparison(c: Comparison) -> str | None:
    """Median per-cgroup CPU share and wait time, A beside B."""
    share: dict[str, tuple[float, float]] = {}
    wait: dict[str, tuple[float, float]] = {}
    for m in c.metrics:
        hit = _CG.match(m.name)
        if not hit or m.median_a is None or m.median_b is None:
            continue
        key = (hit["group"] + ": " if hit["group"] else "") + hit["cg"]
        (share if hit["what"] == "share_pct" else wait)[key] = (m.median_a, m.median_b)
    if not share and not wait:
        return None
    return _paired_bars(share, wait, (f"A: {c.a.label}", f"B: {c.b.label}"))


def _paired_bars(share: Mapping[str, tuple[float, ...]], wait: Mapping[str, tuple[float, ...]],
                 series: Sequence[str]) -> str:
    with plt.rc_context(_RC):
        fig = plt.figure(figsize=(9, 3.0))
        for k, (title, data) in enumerate((("CPU share of all workers (%)", share),
                                           ("run delay: waiting / window (%)", wait))):
            ax = fig.add_subplot(1, 2, k + 1)
            names = sorted(data)
            width = 0.8 / max(1, len(series))
            for s, label in enumerate(series):
                xs = np.arange(len(names)) + (s - (len(series) - 1) / 2) * width
                vals = [data[n][s] for n in names]
                colour = [A_COLOUR, B_COLOUR][s] if len(series) == 2 else None
                bars = ax.bar(xs, vals, width, label=label, color=colour)
                ax.bar_label(bars, fmt="%.1f", fontsize=7)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels([_short(n, 20) for n in names])
            ax.set_title(title)
            ax.set_ylabel("%")
            ax.legend(fontsize=7, frameon=False)
        fig.tight_layout()
        return to_svg(fig)


def cgroup_bars_from_run(stats: Mapping[str, object], label: str) -> str | None:
    """One run's per-cgroup CPU share and wait time (from its worker reports)."""
    scenario = stats.get("scenario")
    if not isinstance(scenario, Mapping):
        return None
    workers = [w for w in scenario.get("workers") or [] if isinstance(w, Mapping)]
    total = sum(float(w.get("run_ms") or 0) for w in workers)
    share: dict[str, tuple[float, ...]] = {}
    wait: dict[str, tuple[float, ...]] = {}
    for cg in sorted({str(w.get("cgroup")) for w in workers}):
        ws = [w for w in workers if str(w.get("cgroup")) == cg]
        run = sum(float(w.get("run_ms") or 0) for w in ws)
        wall = sum(float(w.get("wall_ms") or 0) for w in ws)
        share[cg] = (100 * run / total if total else 0.0,)
        wait[cg] = (100 * sum(float(w.get("wait_ms") or 0) for w in ws) / wall if wall
                    else 0.0,)
    if not share:
        return None
    return _paired_bars(share, wait, (label,))


def verdict_matrix(m: VerdictMatrix) -> str:
    """The matrix as a grid coloured by verdict (pass/fail/error/skip), each cell
    labelled with its verdict (the last, when a cell ran more than once)."""
    with plt.rc_context(_RC):
        fig = plt.figure(figsize=(1.6 + 1.25 * max(1, len(m.columns)),
                                  1.2 + 0.42 * max(1, len(m.rows))))
        ax = fig.add_subplot(1, 1, 1)
        for i, r in enumerate(m.rows):
            for j, cell in enumerate(r.cells):
                last = cell[-1] if cell else None
                v = last.css if last is not None and last.css != NO_VERDICT else ""
                ax.add_patch(Rectangle((j, i), 0.96, 0.92,
                                       color=VERDICT_COLOURS.get(v, "#f0f0f0")))
                ax.text(j + 0.48, i + 0.46, last.label.upper() if last else "-",
                        ha="center", va="center", fontsize=7,
                        color="white" if v in ("pass", "fail", "error") else "#333333")
        ax.set_xlim(0, len(m.columns))
        ax.set_ylim(len(m.rows), 0)
        ax.set_xticks([j + 0.48 for j in range(len(m.columns))])
        ax.set_xticklabels(m.columns, rotation=30, ha="right")
        ax.set_yticks([i + 0.46 for i in range(len(m.rows))])
        ax.set_yticklabels([r.label for r in m.rows])
        ax.set_xlabel(m.column_label)
        ax.set_ylabel(m.row_label)
        ax.set_title(m.title)
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        ax.tick_params(length=0)
        return to_svg(fig)


def grouped_bars(categories: Sequence[str], series: Mapping[str, Sequence[float | None]], *,
                 title: str, ylabel: str, log: bool = False) -> str:
    """Bars per category, one per series (verifier: programs x kernel/topology)."""
    with plt.rc_context(_RC):
        fig = plt.figure(figsize=(max(6.0, 0.9 * len(categories) * max(1, len(series)) ** 0.5),
                                  3.6))
        ax = fig.add_subplot(1, 1, 1)
        width = 0.8 / max(1, len(series))
        for s, (label, values) in enumerate(series.items()):
            xs = np.arange(len(categories)) + (s - (len(series) - 1) / 2) * width
            ax.bar(xs, [v or 0 for v in values], width, label=label)
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels([_short(c, 28) for c in categories], rotation=35, ha="right")
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=7, frameon=False, ncol=2)
        fig.tight_layout()
        return to_svg(fig)


#: the failure, the stalled task and idle time on the per-CPU timeline
FAIL_COLOUR, STALL_COLOUR, IDLE_COLOUR = "#d73027", "#b2182b", "#eeeeee"
#: other tasks runnable but not running at the failure
WAIT_COLOUR = "#f4a582"
_TASK_PALETTE = ("#4575b4", "#74add1", "#1a9850", "#91cf60", "#e08214", "#fdb863",
                 "#8073ac", "#b2abd2", "#35978f", "#80cdc1", "#bf812d", "#dfc27d")


def _task_colour(comm: str, pid: int) -> str:
    # stable per task across reports: a hash of the name, not of the drawing order
    h = sum((i + 1) * ord(ch) for i, ch in enumerate(f"{comm}[{pid}]"))
    return _TASK_PALETTE[h % len(_TASK_PALETTE)]


def cpu_timeline(window: TraceWindow, *, title: str = "") -> str:
    """The last seconds before the failure, one row per CPU: what ran (a bar per task,
    labelled where it is wide enough, idle in grey), the stalled task in red, its
    runnable-but-not-running wait on a row of its own (and below it, lighter, the other
    tasks waiting at the failure), the failure as a red line."""
    origin = window.failure_t if window.failure_t is not None else window.end
    span = max(window.end - window.start, 1e-6)
    rows = [*window.cpus]
    stall_row = len(rows) if window.stalled_pid is not None else None
    first_wait = len(rows) + (stall_row is not None)
    n_rows = first_wait + len(window.waiting)
    with plt.rc_context(_RC):
        fig = plt.figure(figsize=(10, 0.9 + 0.42 * n_rows))
        ax = fig.add_subplot(1, 1, 1)
        for s in window.segments:
            y = rows.index(s.cpu) if s.cpu in rows else None
            if y is None:
                continue
            stalled = s.pid == window.stalled_pid
            colour = (IDLE_COLOUR if s.pid == 0 else STALL_COLOUR if stalled
                      else _task_colour(s.comm, s.pid))
            ax.add_patch(Rectangle((s.start - origin, y - 0.38), s.end - s.start, 0.76,
                                   facecolor=colour, edgecolor="white", lw=0.3))
            if s.pid != 0 and (s.end - s.start) > span * 0.07:
                ax.text((s.start + s.end) / 2 - origin, y, f"{s.comm}[{s.pid}]",
                        ha="center", va="center", fontsize=6.5,
                        color="white" if stalled else "#111111", clip_on=True)
        labels = [f"CPU {c}" for c in rows]
        if stall_row is not None:
            labels.append(f"{window.stalled_comm}[{window.stalled_pid}]")
            if window.stalled_since is not None:
                start = max(window.stalled_since, window.start)
                ax.add_patch(Rectangle((start - origin, stall_row - 0.3), window.end - start,
                                       0.6, facecolor="none", edgecolor=STALL_COLOUR,
                                       hatch="////", lw=1.0))
                ax.text((start + window.end) / 2 - origin, stall_row,
                        f"runnable, not running since {window.stalled_since - origin:+.3f} s",
                        fontsize=7.5, color=STALL_COLOUR, ha="center", va="center",
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5})
        for k, w in enumerate(window.waiting):
            labels.append(f"{w.comm}[{w.pid}]")
            start = max(w.since, window.start)
            ax.add_patch(Rectangle((start - origin, first_wait + k - 0.25), window.end - start,
                                   0.5, facecolor="none", edgecolor=WAIT_COLOUR,
                                   hatch="////", lw=0.8))
            ax.text(start - origin, first_wait + k, f" waiting since {w.since - origin:+.3f} s",
                    fontsize=6.5, color="#555555", ha="left", va="center",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
        if window.failure_t is not None:
            ax.axvline(0.0, color=FAIL_COLOUR, lw=1.4)
            ax.text(0.0, -0.75, " failure" + (f" (CPU {window.failure_cpu})"
                                              if window.failure_cpu is not None else ""),
                    color=FAIL_COLOUR, fontsize=7.5, va="bottom", ha="right")
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels)
        ax.set_ylim(len(labels) - 0.4, -0.9)
        ax.set_xlim(window.start - origin, window.end - origin + span * 0.01)
        ax.set_xlabel("seconds relative to the failure (trace clock)")
        ax.set_title(title or "per-CPU timeline before the failure")
        return to_svg(fig)
