"""Statistics of a report: confidence bands over seeds and each method against the best baseline.

The *baselines* are the classic strategies, those without a learned model of the space:
:data:`CLASSIC` (random, evolution, tpe, reinforce, local). The *best baseline* is the classic
method with the best mean final value (best metric at the full budget). Every other method is
tested against it with a two-sided Mann-Whitney U test on the seeds' final values; the test
makes no normality assumption, which suits a handful of seeds of bounded accuracies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Methods counted as baselines: classic strategies with no neural (learned) model of the space.
CLASSIC = ("random", "evolution", "tpe", "reinforce", "local")
#: Significance level of the test column's verdict.
ALPHA = 0.05


def ci95(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and half-width of the 95% confidence interval of the mean, per column, over rows (seeds).

    The half-width is Student's t quantile (n - 1 degrees of freedom) times the standard error
    (std with ``ddof=1`` / sqrt(n)), counting only the finite values of each column; it is 0
    where a column has a single value and NaN where it has none.
    """
    from scipy import stats

    mat = np.asarray(mat, float)
    n = np.isfinite(mat).sum(axis=0)
    mean = np.full(mat.shape[1], np.nan)
    half = np.full(mat.shape[1], np.nan)
    some = n > 0
    mean[some] = np.nanmean(mat[:, some], axis=0)
    half[n == 1] = 0.0
    many = n > 1
    if many.any():
        sd = np.nanstd(mat[:, many], axis=0, ddof=1)
        half[many] = stats.t.ppf(0.975, n[many] - 1) * sd / np.sqrt(n[many])
    return mean, half


@dataclass
class Test:
    """One method against the best baseline at the full budget."""

    method: str
    baseline: str
    n: int  # seeds of the method
    n_baseline: int
    difference: float  # mean final value of the method minus the baseline's (metric units)
    u: float  # Mann-Whitney U of the method
    p: float  # two-sided p-value (NaN when a side has fewer than 2 seeds)

    def verdict(self, mode: str = "max") -> str:
        if not math.isfinite(self.p):
            return "too few seeds"
        if self.p >= ALPHA:
            return "no significant difference"
        better = self.difference > 0 if mode == "max" else self.difference < 0
        return f"{'better' if better else 'worse'} (p < {ALPHA})"


def best_baseline(finals: dict[str, np.ndarray], mode: str = "max") -> str | None:
    """The classic method with the best mean final value, or None when none ran or all failed."""
    sign = 1.0 if mode == "max" else -1.0
    scored = {m: float(np.mean(v[np.isfinite(v)])) for m, v in finals.items()
              if m in CLASSIC and np.isfinite(v).any()}
    return max(scored, key=lambda m: sign * scored[m]) if scored else None


def against_baseline(finals: dict[str, np.ndarray], mode: str = "max",
                     methods: Sequence[str] | None = None) -> list[Test]:
    """Mann-Whitney U test of every other method's final values against the best baseline's."""
    from scipy import stats

    base = best_baseline(finals, mode)
    if base is None:
        return []
    b = finals[base][np.isfinite(finals[base])]
    out = []
    for method in methods or finals:
        if method == base:
            continue
        a = finals[method][np.isfinite(finals[method])]
        if not len(a):
            continue
        diff = float(a.mean() - b.mean())
        if len(a) < 2 or len(b) < 2:
            u, p = math.nan, math.nan
        elif np.ptp(np.concatenate([a, b])) == 0:  # every value equal: no difference to test
            u, p = len(a) * len(b) / 2, 1.0
        else:
            res = stats.mannwhitneyu(a, b, alternative="two-sided")
            u, p = float(res.statistic), float(res.pvalue)
        out.append(Test(method, base, len(a), len(b), diff, u, p))
    return out
