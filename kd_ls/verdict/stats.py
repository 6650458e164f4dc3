"""Intervals over seeds and estimates of effects (science.md §6).

An `Interval` is what a table shows (a mean and its 95% Student-t interval over seeds); an
`Estimate` is what a comparison carries into the family-wise decision (family.py): a value, its
standard error and degrees of freedom, and how its precision would change with more seeds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

LEVEL = 0.95

# The verdict words (primary.py and family.py decide which one a comparison gets).
WORSE = "worse"
BETTER = "better"
UNDECIDED = "undecided"


@dataclass(frozen=True)
class Interval:
    """Mean over seeds with a two-sided confidence interval [low, high] from n values."""

    mean: float
    low: float
    high: float
    n: int

    def clipped(self, floor: float = 0.0) -> "Interval":
        """The interval with bounds below ``floor`` raised to it: for a quantity that cannot be
        below ``floor`` this never excludes the true value, so coverage is kept."""
        low = self.low if math.isnan(self.low) else max(self.low, floor)
        high = self.high if math.isnan(self.high) else max(self.high, floor)
        return Interval(self.mean, low, high, self.n)


def t_quantile(df: float, tail: float) -> float:
    """Upper ``tail`` quantile of Student's t with ``df`` degrees of freedom (nan when df < 1)."""
    return float(scipy_stats.t.ppf(1 - tail, df)) if df >= 1 else math.nan


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Student-t confidence interval for the mean of ``values`` (n - 1 degrees of freedom).

    With one value the mean is known but its spread is not, so low and high are nan;
    with no values everything is nan.
    """
    data = np.asarray(values, dtype=float)
    n = int(data.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(data.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    half_width = t_quantile(n - 1, (1 - level) / 2) * float(data.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half_width, mean + half_width, n)


@dataclass(frozen=True)
class Estimate:
    """An effect with its standard error ``se`` on ``df`` degrees of freedom from ``seeds`` seeds.

    ``rows_per_seed``, ``parameters`` and ``parameters_per_seed`` say how the precision grows with
    seeds: with S seeds the fit would have S * rows_per_seed observations and
    S * (rows_per_seed - parameters_per_seed) - parameters degrees of freedom, and its standard
    error would shrink as sqrt(seeds / S) (the observed spread held fixed). A mean of paired
    differences has one row per seed and one parameter; a fit with a seed term has one more
    parameter per seed.
    """

    value: float
    se: float
    df: int
    seeds: int
    rows_per_seed: float = 1.0
    parameters: int = 1
    parameters_per_seed: int = 0

    def interval(self, quantile: float) -> tuple[float, float]:
        """value -/+ quantile * se (nan bounds when the spread is unknown)."""
        if self.df < 1 or math.isnan(self.se):
            return math.nan, math.nan
        return self.value - quantile * self.se, self.value + quantile * self.se

    def df_with(self, seeds: int) -> int:
        """Degrees of freedom the same design would have with ``seeds`` seeds."""
        return int(round(seeds * (self.rows_per_seed - self.parameters_per_seed))) - self.parameters

    def se_with(self, seeds: int) -> float:
        """Standard error the same design would have with ``seeds`` seeds."""
        return self.se * math.sqrt(self.seeds / seeds)


def mean_estimate(values: Sequence[float]) -> Estimate:
    """The mean of per-seed values (e.g. paired differences) as an Estimate: se = sd / sqrt(n)."""
    data = np.asarray(values, dtype=float)
    n = int(data.size)
    if n == 0:
        return Estimate(math.nan, math.nan, 0, 0)
    se = float(data.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return Estimate(float(data.mean()), se, n - 1, n)
