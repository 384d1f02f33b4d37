"""What a comparison says: per metric the samples, medians, ratio with its interval,
p-values and the outcome; for the whole, the sides, the runs left out and the options."""

from __future__ import annotations

import enum

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.results.metricdefs import Metric


class MetricOutcome(enum.StrEnum):
    """The answer for one metric (docs/compare.md, "How an outcome is decided")."""

    BETTER = "better"
    WORSE = "worse"
    DIFFERENT = "different"  # a significant change of a metric with no better direction
    NO_DIFFERENCE = "no significant difference"
    INCONCLUSIVE = "inconclusive"

    @property
    def significant(self) -> bool:
        return self in (MetricOutcome.BETTER, MetricOutcome.WORSE, MetricOutcome.DIFFERENT)


class CompareOptions(Frozen):
    alpha: float = Field(0.05, gt=0, lt=1, description="family-wise error rate (Holm)")
    min_effect: float = Field(0.05, ge=0, lt=1,
                              description="smallest relative change that matters (0.05 = 5%)")
    confidence: float = Field(0.95, gt=0, lt=1, description="bootstrap interval level")
    min_runs: int = Field(3, ge=2, description="fewer valid runs on a side: inconclusive")


class MetricComparison(Metric):
    """One metric (``Metric``: name, family, unit, polarity, kind) with both sides'
    samples and what the statistics say."""

    a: list[float] = Field(default_factory=list)
    b: list[float] = Field(default_factory=list)
    median_a: float | None = None
    median_b: float | None = None
    ratio: float | None = Field(None, description="median(B) / median(A)")
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = Field(None, description="two-sided Mann-Whitney U")
    p_adj: float | None = Field(None, description="Holm-adjusted over the metric kind")
    outcome: MetricOutcome = MetricOutcome.INCONCLUSIVE
    why: str = ""
    runs_needed: int | None = Field(None, description="runs per side to resolve min_effect")

    @property
    def change_pct(self) -> float | None:
        return None if self.ratio is None else 100.0 * (self.ratio - 1.0)


class Side(Frozen):
    """One side of the comparison: its label, what it was, how many runs counted."""

    label: str
    description: str = ""
    runs: int = 0
    used: int = 0
    left_out: list[str] = Field(default_factory=list, description="runs not counted, why")
    sources: list[str] = Field(default_factory=list)


class Comparison(Frozen):
    a: Side
    b: Side
    dimension: str = Field("", description="what differs between A and B")
    options: CompareOptions = Field(default_factory=CompareOptions)
    metrics: list[MetricComparison] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def metric(self, name: str) -> MetricComparison:
        for m in self.metrics:
            if m.name == name:
                return m
        known = ", ".join(m.name for m in self.metrics) or "(none)"
        raise KeyError(f"no metric {name!r} in this comparison; have: {known}")

    def by_outcome(self, outcome: MetricOutcome) -> list[MetricComparison]:
        return [m for m in self.metrics if m.outcome is outcome]
