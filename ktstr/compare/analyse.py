"""From two sets of runs to a ``Comparison`` (pure apart from scipy's arithmetic).

How an outcome is decided, per metric (also in docs/compare.md):

1. Fewer than ``min_runs`` values on a side: **inconclusive** (too few runs).
2. The two-sided Mann-Whitney U p-value is Holm-adjusted over every metric of the same
   family of kinds (scheduler and payload metrics together; harness facts on their own).
3. Significant — adjusted p < ``alpha`` and the bootstrap interval of B/A excludes 1 —
   and the ratio moves by at least ``min_effect``: **better** or **worse** by the metric's
   polarity (**different** for a metric with no better direction). Significant but
   smaller than ``min_effect``: **no significant difference** (the why says so).
4. Not significant, and the interval lies within 1 ± ``min_effect``: **no significant
   difference**; otherwise **inconclusive**, with the runs per side that would resolve
   ``min_effect`` at the observed spread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ktstr.compare import stats
from ktstr.compare.model import (
    CompareOptions,
    Comparison,
    MetricComparison,
    MetricOutcome,
    Side,
)
from ktstr.declare.payload import MetricHint, Polarity
from ktstr.results.metricdefs import Metric, MetricKind, MetricRegistry, Sample, extract
from ktstr.results.model import RunResult, SchedOutcome, Verdict, VmOutcome

#: scheduler outcomes whose runs still measure the scheduler (a FAIL of checks only)
_MEASURED = (SchedOutcome.ATTACHED, SchedOutcome.NONE)


def left_out_reason(r: RunResult) -> str | None:
    """Why a run does not count (``None`` when it does): it errored or was skipped, the
    VM did not finish, or the scheduler did not stay attached. A run that failed only
    its checks (starvation, fairness) still measured the scheduler and counts."""
    if r.verdict in (Verdict.ERROR, Verdict.SKIP):
        return f"{r.verdict.value}: {'; '.join(r.reasons) or 'no reason given'}"
    if r.vm_outcome is not VmOutcome.OK:
        return f"vm {r.vm_outcome.value}: {'; '.join(r.reasons)}"
    if r.sched_outcome not in _MEASURED:
        return f"scheduler {r.sched_outcome.value}: {'; '.join(r.reasons)}"
    return None


def _family(kind: MetricKind) -> str:
    return "harness" if kind is MetricKind.HARNESS else "scheduler"


def _direction(polarity: Polarity, up: bool) -> MetricOutcome:
    if polarity is Polarity.NEUTRAL:
        return MetricOutcome.DIFFERENT
    better = up if polarity is Polarity.HIGHER_BETTER else not up
    return MetricOutcome.BETTER if better else MetricOutcome.WORSE


def decide(metric: Metric, a: Sequence[float], b: Sequence[float], p_adj: float,
           ci: tuple[float, float] | None, opts: CompareOptions, family_size: int
           ) -> tuple[MetricOutcome, str, int | None]:
    """Outcome, the reason in words, and the runs needed when inconclusive; ``ci`` is
    the bootstrap interval of median(B)/median(A)."""
    need = stats.runs_needed(a, b, min_effect=opts.min_effect, alpha=opts.alpha,
                             family=family_size)
    if len(a) < opts.min_runs or len(b) < opts.min_runs:
        return (MetricOutcome.INCONCLUSIVE,
                f"too few runs ({len(a)} and {len(b)}; at least {opts.min_runs} each, and "
                f"with {len(a)} and {len(b)} the smallest possible p is "
                f"{stats.smallest_p(len(a), len(b)):.3g})",
                need)
    ma, mb = stats.median(a), stats.median(b)
    ratio = mb / ma if ma != 0 else None
    m = opts.min_effect
    if p_adj < opts.alpha and (ci is None or ci[0] > 1 or ci[1] < 1):
        up = mb > ma
        if ratio is not None and abs(ratio - 1) < m:
            return (MetricOutcome.NO_DIFFERENCE,
                    f"significant (p_adj={p_adj:.3g}) but {abs(ratio - 1):.1%} is below "
                    f"the minimum effect {m:.0%}", None)
        return _direction(metric.polarity, up), f"p_adj={p_adj:.3g} < {opts.alpha:g}", None
    if ci is not None and ci[0] >= 1 - m and ci[1] <= 1 + m:
        return (MetricOutcome.NO_DIFFERENCE,
                f"not significant (p_adj={p_adj:.3g}); the interval "
                f"[{ci[0]:.3f}, {ci[1]:.3f}] is within 1 ± {m:g}", None)
    if all(x == a[0] for x in [*a, *b]):
        return MetricOutcome.NO_DIFFERENCE, "every value is the same", None
    where = f"the interval [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "the ratio (median A is 0)"
    return (MetricOutcome.INCONCLUSIVE,
            f"not significant (p_adj={p_adj:.3g}) and {where} allows a change of "
            f"{m:.0%} or more", need)


def compare_samples(a_runs: Sequence[Sequence[Sample]], b_runs: Sequence[Sequence[Sample]],
                    opts: CompareOptions | None = None) -> list[MetricComparison]:
    """Every metric present on both sides, compared (metrics only one side has are
    left out: the sides measured different things)."""
    opts = opts or CompareOptions()
    meta: dict[str, Metric] = {}
    va: dict[str, list[float]] = {}
    vb: dict[str, list[float]] = {}
    for runs, into in ((a_runs, va), (b_runs, vb)):
        for run in runs:
            for s in run:
                meta.setdefault(s.metric.name, s.metric)
                into.setdefault(s.metric.name, []).append(s.value)
    names = [n for n in meta if n in va and n in vb]
    pvals = {n: stats.mann_whitney_p(va[n], vb[n]) for n in names}
    adjusted: dict[str, float] = {}
    for fam in ("scheduler", "harness"):
        members = [n for n in names if _family(meta[n].kind) == fam]
        for n, p in zip(members, stats.holm([pvals[n] for n in members]), strict=True):
            adjusted[n] = p
    sizes = {fam: sum(1 for n in names if _family(meta[n].kind) == fam)
             for fam in ("scheduler", "harness")}
    out: list[MetricComparison] = []
    for n in names:
        m, a, b = meta[n], va[n], vb[n]
        ci = stats.ratio_ci(a, b, confidence=opts.confidence)
        outcome, why, need = decide(m, a, b, adjusted[n], ci, opts, sizes[_family(m.kind)])
        ma, mb = stats.median(a), stats.median(b)
        out.append(MetricComparison(
            name=n, family=m.family, unit=m.unit, polarity=m.polarity, kind=m.kind,
            description=m.description, a=list(a), b=list(b), median_a=ma, median_b=mb,
            ratio=mb / ma if ma != 0 else None, ci_low=ci[0] if ci else None,
            ci_high=ci[1] if ci else None, p=pvals[n], p_adj=adjusted[n], outcome=outcome,
            why=why, runs_needed=need))
    return out


def compare_results(a: Sequence[RunResult], b: Sequence[RunResult], *,
                    a_label: str = "A", b_label: str = "B", dimension: str = "",
                    opts: CompareOptions | None = None, registry: MetricRegistry | None = None,
                    hints: Mapping[str, Sequence[MetricHint]] | None = None,
                    a_description: str = "", b_description: str = "",
                    sources: tuple[Sequence[str], Sequence[str]] = ((), ()),
                    groups: tuple[Sequence[str], Sequence[str]] | None = None) -> Comparison:
    """Leave out runs that did not measure the scheduler, extract every run's metrics,
    compare. ``groups`` (one label per run, e.g. the pytest test id) keeps the metrics
    of different tests apart: ``test_x[...]: work.units``."""
    opts = opts or CompareOptions()
    sides: list[Side] = []
    samples: list[list[list[Sample]]] = []
    group_of = groups or ([""] * len(a), [""] * len(b))
    grouped = any(g for side in group_of for g in side)
    for label, desc, runs, src, gs in ((a_label, a_description, a, sources[0], group_of[0]),
                                       (b_label, b_description, b, sources[1], group_of[1])):
        used: list[list[Sample]] = []
        left: list[str] = []
        for i, (r, g) in enumerate(zip(runs, gs, strict=True), 1):
            why = left_out_reason(r)
            if why is None:
                got = extract(r, registry, hints)
                if grouped:
                    got = [s.model_copy(update={"metric": s.metric.model_copy(
                        update={"name": f"{g or '(no test)'}: {s.metric.name}"})})
                        for s in got]
                used.append(got)
            else:
                left.append(f"run {i}: {why}")
        samples.append(used)
        sides.append(Side(label=label, description=desc, runs=len(runs), used=len(used),
                          left_out=left, sources=list(src)))
    notes = [f"{s.label}: {len(s.left_out)} of {s.runs} runs left out (see left_out)"
             for s in sides if s.left_out]
    metrics = compare_samples(samples[0], samples[1], opts)
    if not metrics:
        notes.append("no metric is present on both sides (do both run the same scenario "
                     "or payload?)")
    return Comparison(a=sides[0], b=sides[1], dimension=dimension, options=opts,
                      metrics=metrics, notes=notes)
