"""The statistics of ``ktstr compare`` (pure functions over samples of floats).

Per metric: the median of each side, the ratio of medians B/A with a bootstrap
percentile confidence interval (scipy.stats.bootstrap, fixed seed, so the same samples
always give the same interval), a two-sided Mann-Whitney U p-value (exact for small
samples: scipy's exact distribution without ties, an exhaustive permutation test with
ties), and Holm's step-down correction over the metrics of one comparison.

These are the documented statistics (docs/compare.md); nothing else decides an outcome.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

#: resamples of the bootstrap (percentile interval)
BOOTSTRAP_RESAMPLES = 10_000
#: seed of the bootstrap's generator: a comparison is reproducible from its samples
BOOTSTRAP_SEED = 20261130
#: above this many distinct splits a tied sample uses the normal approximation
EXACT_PERMUTATIONS = 20_000
#: asymptotic relative efficiency of Mann-Whitney U against the t-test (normal data)
MWU_ARE = 3 / math.pi


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=float)))


def _median_ratio(a: NDArray[np.float64], b: NDArray[np.float64],
                  axis: int = -1) -> NDArray[np.float64]:
    ma = np.median(a, axis=axis)
    mb = np.median(b, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: NDArray[np.float64] = np.where(ma != 0, mb / np.where(ma != 0, ma, 1.0), np.nan)
    return out


def ratio_ci(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95
             ) -> tuple[float, float] | None:
    """Bootstrap percentile interval of median(B)/median(A), resampling each side on
    its own. ``None`` when a ratio is undefined (a median of A that can be 0)."""
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    if len(xa) == 0 or len(xb) == 0 or median(a) == 0:
        return None
    if np.all(xa == xa[0]) and np.all(xb == xb[0]):  # no spread: the ratio is exact
        r = float(xb[0] / xa[0]) if xa[0] != 0 else math.nan
        return None if math.isnan(r) else (r, r)
    with warnings.catch_warnings():
        # a resample whose median of A is 0 has no ratio: the interval is then undefined
        # (None below), which scipy also reports as a "degenerate" warning
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        res = sps.bootstrap((xa, xb), _median_ratio, vectorized=True, paired=False,
                            confidence_level=confidence, n_resamples=BOOTSTRAP_RESAMPLES,
                            method="percentile", rng=np.random.default_rng(BOOTSTRAP_SEED))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isnan(lo) or math.isnan(hi):  # some resampled median of A was 0
        return None
    return lo, hi


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 when every value is the same."""
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    if len(xa) == 0 or len(xb) == 0:
        return 1.0
    both = np.concatenate([xa, xb])
    if np.all(both == both[0]):
        return 1.0
    tied = len(np.unique(both)) < len(both)
    if tied and math.comb(len(both), len(xa)) <= EXACT_PERMUTATIONS:
        method: object = sps.PermutationMethod(n_resamples=EXACT_PERMUTATIONS)
    else:
        method = "auto"
    res = sps.mannwhitneyu(xa, xb, alternative="two-sided", method=method)
    return min(1.0, float(res.pvalue))


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value Mann-Whitney U can give with these sample sizes
    (complete separation, no ties): ``2 / C(n_a + n_b, n_a)``."""
    if n_a < 1 or n_b < 1:
        return 1.0
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def relative_spread(values: Sequence[float]) -> float:
    """Robust relative spread: 1.4826 x MAD / |median| (the SD for normal data)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return math.nan
    med = float(np.median(x))
    if med == 0:
        return math.nan
    return 1.4826 * float(np.median(np.abs(x - med))) / abs(med)


def runs_needed(a: Sequence[float], b: Sequence[float], *, min_effect: float,
                alpha: float, family: int, power: float = 0.8) -> int | None:
    """Runs per side to detect the larger of ``min_effect`` and the observed relative
    change of the medians with ``power`` at a two-sided ``alpha / family`` (Holm's first
    step, the strictest), from the observed relative spread: the two-sample normal
    formula divided by Mann-Whitney's efficiency, and at least the smallest size whose
    best p-value can pass. ``None`` when the spread cannot be estimated."""
    spreads = [s for s in (relative_spread(a), relative_spread(b)) if not math.isnan(s)]
    if not spreads or min_effect <= 0:
        return None
    ma = median(a)
    if ma != 0 and len(b):
        min_effect = max(min_effect, abs(median(b) / ma - 1))
    sd = math.sqrt(sum(s * s for s in spreads) / len(spreads))
    level = alpha / max(1, family)
    z = float(sps.norm.ppf(1 - level / 2) + sps.norm.ppf(power))
    n = math.ceil(2 * (z * sd / min_effect) ** 2 / MWU_ARE)
    floor = 2
    while smallest_p(floor, floor) >= level:
        floor += 1
    return max(n, floor)
