"""Intervals over seeds and the verdict words a study may use (science.md §6)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

WORSE = "worse"
BETTER = "better"
NO_DIFFERENCE = "no detectable difference"


@dataclass(frozen=True)
class Interval:
    """Mean over seeds with a two-sided confidence interval [low, high] from n values."""

    mean: float
    low: float
    high: float
    n: int


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
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
    half_width = float(scipy_stats.t.ppf(0.5 + level / 2, n - 1) * data.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half_width, mean + half_width, n)


def verdict_word(interval: Interval) -> str:
    """Word for a difference, decided by the interval alone: a nan bound never decides."""
    if interval.high < 0:
        return WORSE
    if interval.low > 0:
        return BETTER
    return NO_DIFFERENCE
