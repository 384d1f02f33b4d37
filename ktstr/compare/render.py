"""A ``Comparison`` as a terminal table and as markdown for a CI job summary (pure), and
the ``--fail-on`` gates."""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Sequence

from ktstr.cli.output import table
from ktstr.compare.model import Comparison, MetricComparison, MetricOutcome
from ktstr.declare.base import Frozen
from ktstr.errors import UserError
from ktstr.results.metricdefs import MetricKind

#: order in which outcomes are listed (most important first)
OUTCOME_ORDER = (MetricOutcome.WORSE, MetricOutcome.BETTER, MetricOutcome.DIFFERENT,
                 MetricOutcome.INCONCLUSIVE, MetricOutcome.NO_DIFFERENCE)

_MARK = {MetricOutcome.WORSE: "▼ worse", MetricOutcome.BETTER: "▲ better",
         MetricOutcome.DIFFERENT: "◆ different", MetricOutcome.INCONCLUSIVE: "? inconclusive",
         MetricOutcome.NO_DIFFERENCE: "= no significant difference"}


def fmt_value(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    ax = abs(x)
    if ax != 0 and (ax >= 1e6 or ax < 1e-3):
        return f"{x:.3g}"
    if ax >= 100:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def fmt_ratio(m: MetricComparison) -> str:
    if m.ratio is None:
        return "-"
    ci = (f" [{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.ci_low is not None and m.ci_high
          is not None else "")
    return f"{m.ratio:.3f}{ci}"


def fmt_p(p: float | None) -> str:
    return "-" if p is None else (f"{p:.2g}" if p >= 0.001 else f"{p:.1e}")


def sorted_metrics(c: Comparison, kind: MetricKind | None = None) -> list[MetricComparison]:
    ms = [m for m in c.metrics if kind is None or (m.kind is MetricKind.HARNESS)
          == (kind is MetricKind.HARNESS)]
    return sorted(ms, key=lambda m: (OUTCOME_ORDER.index(m.outcome), m.name))


def _row(m: MetricComparison) -> list[str]:
    need = f" (≈{m.runs_needed} runs)" if m.outcome is MetricOutcome.INCONCLUSIVE \
        and m.runs_needed else ""
    return [m.name, m.unit, fmt_value(m.median_a), fmt_value(m.median_b), fmt_ratio(m),
            fmt_p(m.p), fmt_p(m.p_adj), _MARK[m.outcome] + need]


HEADERS = ("METRIC", "UNIT", "MEDIAN A", "MEDIAN B", "B/A [95% CI]", "P", "P (HOLM)", "OUTCOME")


def headline(c: Comparison) -> str:
    counts = {o: len(c.by_outcome(o)) for o in OUTCOME_ORDER}
    sched = [m for m in c.metrics if m.kind is not MetricKind.HARNESS]
    parts = [f"{counts[o]} {o.value}" for o in OUTCOME_ORDER if counts[o]]
    what = f"B vs A ({c.dimension})" if c.dimension else "B vs A"
    return (f"{what}: {len(sched)} scheduler/payload metrics, "
            f"{len(c.metrics) - len(sched)} harness; " + ", ".join(parts))


def terminal(c: Comparison) -> str:
    lines = [f"A: {c.a.label}  {c.a.description}  ({c.a.used}/{c.a.runs} runs counted)",
             f"B: {c.b.label}  {c.b.description}  ({c.b.used}/{c.b.runs} runs counted)",
             f"alpha {c.options.alpha:g} (Holm), minimum effect {c.options.min_effect:.0%}, "
             f"{c.options.confidence:.0%} bootstrap interval of median B / median A", ""]
    sched = sorted_metrics(c, MetricKind.SCHEDULER)
    if sched:
        lines.append(table(HEADERS, [_row(m) for m in sched]))
    harness = sorted_metrics(c, MetricKind.HARNESS)
    if harness:
        lines += ["", "harness (not the scheduler; not gated by default):",
                  table(HEADERS, [_row(m) for m in harness])]
    for side in (c.a, c.b):
        lines += [f"{side.label}: left out {w}" for w in side.left_out]
    lines += c.notes
    lines += ["", headline(c)]
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(c: Comparison, *, gate_failures: Sequence[str] = ()) -> str:
    """GitHub/GitLab-flavoured markdown: the headline, what A and B were, and tables."""
    out = [f"### ktstr compare: {_md_escape(c.b.label)} vs {_md_escape(c.a.label)}", "",
           f"**{_md_escape(headline(c))}**", "",
           f"- **A** `{c.a.label}`: {_md_escape(c.a.description)} — {c.a.used}/{c.a.runs} runs",
           f"- **B** `{c.b.label}`: {_md_escape(c.b.description)} — {c.b.used}/{c.b.runs} runs",
           f"- alpha {c.options.alpha:g} (Holm), minimum effect {c.options.min_effect:.0%}, "
           f"{c.options.confidence:.0%} bootstrap CI of median B / median A, two-sided "
           "Mann-Whitney U", ""]
    if gate_failures:
        out += ["**Gate failed:**", "", *[f"- {_md_escape(g)}" for g in gate_failures], ""]
    for title, kind in (("Scheduler and payload metrics", MetricKind.SCHEDULER),
                        ("Harness (not gated by default)", MetricKind.HARNESS)):
        ms = sorted_metrics(c, kind)
        if not ms:
            continue
        out += [f"#### {title}", "", "| " + " | ".join(HEADERS) + " |",
                "|" + "---|" * len(HEADERS)]
        out += ["| " + " | ".join(_md_escape(x) for x in _row(m)) + " |" for m in ms]
        out.append("")
    for side in (c.a, c.b):
        out += [f"- {side.label}: left out {_md_escape(w)}" for w in side.left_out]
    out += [f"- {_md_escape(n)}" for n in c.notes]
    return "\n".join(out).rstrip() + "\n"


class GateRule(Frozen):
    """``OUTCOME[:GLOB[:PCT]]``: fail when a metric matching GLOB has OUTCOME (and, for
    better/worse/different, changed by at least PCT %)."""

    outcome: MetricOutcome
    pattern: str = "*"
    min_change_pct: float = 0.0

    @classmethod
    def parse(cls, text: str) -> GateRule:
        parts = text.split(":")
        names = {"worse": MetricOutcome.WORSE, "better": MetricOutcome.BETTER,
                 "different": MetricOutcome.DIFFERENT,
                 "inconclusive": MetricOutcome.INCONCLUSIVE}
        if not parts[0] or parts[0] not in names or len(parts) > 3:
            raise UserError(f"--fail-on {text!r}: give OUTCOME[:METRIC-GLOB[:PCT]] with "
                            f"OUTCOME one of {', '.join(names)} (e.g. worse, "
                            "worse:work.units:10%, inconclusive:cgroup.*)")
        pct = 0.0
        if len(parts) == 3:
            m = re.fullmatch(r"\s*([0-9.]+)\s*%?\s*", parts[2])
            if not m:
                raise UserError(f"--fail-on {text!r}: {parts[2]!r} is not a percentage")
            pct = float(m.group(1))
        return cls(outcome=names[parts[0]], pattern=parts[1] if len(parts) > 1 and parts[1]
                   else "*", min_change_pct=pct)

    def matches(self, m: MetricComparison) -> bool:
        if m.outcome is not self.outcome:
            return False
        if self.pattern == "*" and not m.kind.gated:
            return False  # harness facts only when named
        if not fnmatch.fnmatchcase(m.name, self.pattern):
            return False
        if self.min_change_pct and m.outcome.significant:
            return m.change_pct is None or abs(m.change_pct) >= self.min_change_pct
        return True


def gate(c: Comparison, rules: Sequence[GateRule]) -> list[str]:
    """One line per metric that trips a rule (empty: the gate passes)."""
    out: list[str] = []
    for m in c.metrics:
        for rule in rules:
            if rule.matches(m):
                change = f" ({m.change_pct:+.1f}%)" if m.change_pct is not None else ""
                out.append(f"{m.name}: {m.outcome.value}{change}, p_adj={fmt_p(m.p_adj)} "
                           f"(rule {rule.outcome.value}:{rule.pattern}"
                           + (f":{rule.min_change_pct:g}%" if rule.min_change_pct else "")
                           + ")")
                break
    return out
