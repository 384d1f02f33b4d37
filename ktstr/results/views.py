"""What HTML pages show of results, shared by ``ktstr report`` and the service's
dashboard: one page layout and style, the verdict and outcome colours, a run's detail
(verdict, reasons, timeline, checks, logs, debug dump) and a matrix of cells by verdict.

Pure: results in, view models out; ``environment`` renders them with the shared
templates (``templates/_page.html.j2``, ``_style.css.j2``, ``_results.html.j2``). No
plotting here (that is ``plots``, which needs matplotlib), so the service can render
its pages without the ``compare`` extra. Pages load nothing from the network: the
style is inline and there is no script.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import jinja2
from pydantic import Field

from ktstr.compare.model import MetricOutcome
from ktstr.declare.base import Frozen
from ktstr.results.model import RunResult, Verdict
from ktstr.results.report import describe_workload

#: one colour per verdict, used by every plot and page ("" is a cell with no verdict)
VERDICT_COLOURS: dict[str, str] = {
    "pass": "#1a9850", "fail": "#d73027", "error": "#7b3294", "skip": "#bdbdbd", "": "#f0f0f0"}
#: one colour per comparison outcome
OUTCOME_COLOURS: dict[MetricOutcome, str] = {
    MetricOutcome.BETTER: "#1a9850", MetricOutcome.WORSE: "#d73027",
    MetricOutcome.DIFFERENT: "#7b3294", MetricOutcome.INCONCLUSIVE: "#f4a340",
    MetricOutcome.NO_DIFFERENCE: "#8c8c8c"}
#: the CSS class of a cell without a verdict (queued, running, failed to run)
NO_VERDICT = "none"
#: the most lines of one log a page shows (its tail)
MAX_LOG_LINES = 400


class Fact(Frozen):
    label: str
    value: str


class TimelineRow(Frozen):
    t: str = Field(description="guest uptime, formatted")
    name: str
    fields: str


class CheckRow(Frozen):
    name: str
    passed: bool
    detail: str


class LogBlock(Frozen):
    """A block of text a reader may need: a log, a dump, a console."""

    key: str = Field(description="stable id in the page, e.g. sched-log")
    title: str
    text: str
    #: lines left out between ``head`` and the tail that ``text`` holds
    cut: int = 0
    #: the first lines, kept when the middle is cut (a job log's command line)
    head: str = ""


class RunDetail(Frozen):
    """A run as a page shows it."""

    verdict: Verdict
    headline: str
    reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    facts: list[Fact] = Field(default_factory=list)
    timeline: list[TimelineRow] = Field(default_factory=list)
    checks: list[CheckRow] = Field(default_factory=list)
    debug_dump: str = ""
    logs: list[LogBlock] = Field(default_factory=list)
    reproducer: str = ""


def log_block(key: str, title: str, text: str, max_lines: int = MAX_LOG_LINES,
              head_lines: int = 0) -> LogBlock:
    """``text``'s last ``max_lines`` lines, and its first ``head_lines`` when lines
    between are left out (pure)."""
    lines = text.splitlines()
    cut = max(0, len(lines) - max_lines)
    head = lines[:min(head_lines, cut)] if cut else []
    return LogBlock(key=key, title=title, text="\n".join(lines[cut:]),
                    cut=cut - len(head), head="\n".join(head))


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f} s"


def run_detail(r: RunResult, extra_logs: Iterable[LogBlock] = ()) -> RunDetail:
    """The page view of one run: what decided the verdict first, then the evidence."""
    facts = [
        Fact(label="scheduler", value=r.scheduler + (f" ({' '.join(r.sched_args)})"
                                                      if r.sched_args else "")),
        Fact(label="scheduler outcome", value=r.sched_outcome.value
             + (f", ops={r.sched_ops}" if r.sched_ops else "")
             + (f", ejected: {r.ejection_reason}" if r.ejection_reason else "")),
        Fact(label="kernel", value=r.kernel.release or r.kernel.version or r.kernel.spec
             or "?"),
        Fact(label="topology", value=r.topology_requested
             + (f" (guest saw {r.topology_seen})" if r.topology_seen else "")),
        Fact(label="workload", value=describe_workload(r)),
        Fact(label="VM", value=r.vm_outcome.value + (f", {r.accel}" if r.accel else "")),
    ]
    t = r.timings
    timings = [f"{name} {text}" for name, value in (
        ("boot", t.boot_s), ("attach", t.attach_s), ("workload", t.run_s),
        ("scheduler attached", t.sched_run_s), ("total", t.total_s))
        if (text := _seconds(value)) is not None]
    if timings:
        facts.append(Fact(label="timings", value=", ".join(timings)))
    logs = [log_block(key, title, text) for key, title, text in (
        ("sched-log", "Scheduler log", r.sched_log),
        ("kernel-log", "Kernel sched_ext log", r.kernel_sched_ext_log),
        ("panic", "Kernel panic", r.panic_text),
        ("console", "Console (tail)", r.console_tail)) if text.strip()]
    return RunDetail(
        verdict=r.verdict, headline=r.summary_line(), reasons=list(r.reasons),
        notes=list(r.notes), facts=facts,
        timeline=[TimelineRow(t=f"{e.t:.2f}", name=e.name,
                              fields=" ".join(f"{k}={v}" for k, v in e.fields.items()))
                  for e in r.timeline],
        checks=[CheckRow(name=c.name, passed=c.passed, detail=c.detail) for c in r.checks],
        debug_dump=r.debug_dump, logs=[*logs, *extra_logs], reproducer=r.reproducer)


# ---- a matrix of cells by verdict --------------------------------------------------------

class MatrixEntry(Frozen):
    """One cell's result: where it sits, what to show, where it leads."""

    row: str
    column: str
    label: str = Field(description="the verdict, or the state of a cell without one")
    css: str = Field(description="a verdict value, or NO_VERDICT")
    href: str | None = None
    title: str = ""


class MatrixRow(Frozen):
    label: str
    cells: list[list[MatrixEntry]]


class Count(Frozen):
    label: str
    css: str
    n: int


class VerdictMatrix(Frozen):
    title: str
    row_label: str
    column_label: str
    columns: list[str]
    rows: list[MatrixRow]
    counts: list[Count]


def verdict_css(verdict: str | None) -> str:
    """The CSS class of a verdict (``pass``, ...); anything else is NO_VERDICT."""
    return verdict if verdict in {v.value for v in Verdict} else NO_VERDICT


def verdict_matrix(entries: Sequence[MatrixEntry], *, title: str, row_label: str,
                   column_label: str, sort: bool = False) -> VerdictMatrix:
    """Rows x columns of entries (several per cell when a cell repeats), and how many
    cells have each verdict (pure; rows and columns in first-seen order, or sorted).
    The dashboard draws it as a table, the report as an SVG (``plots.verdict_matrix``)."""
    rows = list(dict.fromkeys(e.row for e in entries))
    columns = list(dict.fromkeys(e.column for e in entries))
    if sort:
        rows, columns = sorted(rows), sorted(columns)
    where: dict[tuple[str, str], list[MatrixEntry]] = {}
    for e in entries:
        where.setdefault((e.row, e.column), []).append(e)
    order = [v.value for v in Verdict]
    tally: dict[tuple[str, str], int] = {}
    for e in entries:
        tally[(e.label, e.css)] = tally.get((e.label, e.css), 0) + 1
    counts = [Count(label=label, css=css, n=n) for (label, css), n in sorted(
        tally.items(), key=lambda kv: (order.index(kv[0][1]) if kv[0][1] in order
                                       else len(order), kv[0][0]))]
    return VerdictMatrix(
        title=title, row_label=row_label, column_label=column_label, columns=columns,
        rows=[MatrixRow(label=r, cells=[where.get((r, c), []) for c in columns])
              for r in rows],
        counts=counts)


# ---- rendering ---------------------------------------------------------------------------

@functools.cache
def environment(*packages: str) -> jinja2.Environment:
    """A strict jinja2 environment over ``packages``' templates and the shared ones here
    (``packages`` first, so a page of the service finds its own templates)."""
    loader = jinja2.ChoiceLoader([jinja2.PackageLoader(p, "templates")
                                  for p in (*packages, "ktstr.results")])
    env = jinja2.Environment(loader=loader, autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.globals.update(
        verdict_colours={k: v for k, v in VERDICT_COLOURS.items() if k},
        outcome_colours={o.name.lower(): c for o, c in OUTCOME_COLOURS.items()},
        no_verdict=NO_VERDICT)
    return env
