"""The study's one declared primary question and its precondition, each decided by one test.

Both are contrasts computed per seed and then tested over seeds (science.md §6):
- primary: per seed, the mean over the declared (LS alpha, T) cells of [LS-teacher student minus
  plain-teacher student at the same T]; "worse" / "better" when the two-sided t test on n - 1 df
  rejects 0 at the look's alpha, "equivalent" (no difference larger than ±margin) when the two
  one-sided tests (TOST) both reject at that alpha, else "undecided";
- precondition: per seed, plain-teacher students (mean over the declared T, or at the plain
  teacher's val-chosen T) minus the student trained alone, with the same test and words
  ("helps" / "hurts" / "equivalent" / "undecided").

A seed enters only when it has every cell of the contrast, so every seed's contrast averages the
same cells. The t test, its interval and the TOST are the textbook one-sample forms on scipy's t
distribution (scipy.special's stdtr / stdtrit: fast enough to simulate thousands of studies); the tests check them against
statsmodels' DescrStatsW, hand-computed t intervals and by simulation.
"""
from __future__ import annotations

import math
from functools import cached_property
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import special
from scipy import stats as scipy_stats

from kd_ls.verdict.cells import PLAIN_ALPHA, PRIMARY_METRIC, Cell
from kd_ls.verdict.family import NO_SPREAD, POWER, noncentrality_for_power
from kd_ls.verdict.stats import BETTER, UNDECIDED, WORSE

EQUIVALENT = "equivalent"
HELPS, HURTS = "helps", "hurts"


@dataclass(frozen=True)
class Grid:
    """The cells a contrast averages: LS alphas and temperatures (student cells) of one loss."""

    alphas: tuple[float, ...]
    temperatures: tuple[float, ...]
    loss: str = "kd"

    def describe(self) -> dict[str, Any]:
        """The grid as JSON."""
        return {"alphas": list(self.alphas), "temperatures": list(self.temperatures), "loss": self.loss}


@dataclass(frozen=True)
class SeedTest:
    """A one-sample t test of per-seed contrasts at level ``alpha`` (two-sided), with its TOST."""

    values: tuple[float, ...]
    alpha: float
    margin: float

    @property
    def n(self) -> int:
        """Seeds with a contrast."""
        return len(self.values)

    @cached_property
    def _moments(self) -> tuple[float | None, float | None]:
        """Mean and sample sd (n - 1) of the contrasts, computed once."""
        if not self.n:
            return None, None
        mean = math.fsum(self.values) / self.n
        if self.n < 2:
            return mean, None
        return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in self.values) / (self.n - 1))

    def testable(self) -> bool:
        """At least 2 seeds and some spread: a t statistic exists."""
        return self.n >= 2 and self._moments[1] > NO_SPREAD

    def estimate(self) -> float | None:
        """Mean contrast over seeds (None without seeds)."""
        return self._moments[0]

    def se(self) -> float | None:
        """Standard error of the mean contrast."""
        sd = self._moments[1]
        return None if sd is None else sd / math.sqrt(self.n)

    def interval(self) -> tuple[float | None, float | None]:
        """The two-sided (1 - alpha) t interval of the mean (none at alpha 0: it would be unbounded)."""
        if not self.testable() or self.alpha <= 0:
            return None, None
        half = float(special.stdtrit(self.n - 1, 1 - self.alpha / 2)) * self.se()
        return self.estimate() - half, self.estimate() + half

    def p_value(self) -> float | None:
        """Two-sided p of the t test of mean 0."""
        if not self.testable():
            return None
        return float(2 * special.stdtr(self.n - 1, -abs(self.estimate()) / self.se()))

    def tost_p(self) -> float | None:
        """p of the two one-sided tests of |mean| >= margin (the larger of the two one-sided p)."""
        if not self.testable():
            return None
        mean, se = self.estimate(), self.se()
        below, above = (mean + self.margin) / se, (self.margin - mean) / se
        return float(max(special.stdtr(self.n - 1, -below), special.stdtr(self.n - 1, -above)))

    def word(self, positive: str = BETTER, negative: str = WORSE) -> str:
        """The decision: ``negative`` / ``positive`` when the test rejects 0, EQUIVALENT when the
        TOST rejects ±margin, else UNDECIDED (always UNDECIDED without a t statistic)."""
        if not self.testable():
            return UNDECIDED
        p = self.p_value()
        if p < self.alpha:
            return positive if self.estimate() > 0 else negative
        return EQUIVALENT if self.tost_p() < self.alpha else UNDECIDED

    def summary(self, positive: str = BETTER, negative: str = WORSE) -> dict[str, Any]:
        """What a look records: the word, the estimate and interval in pp, p and the TOST's p."""
        low, high = self.interval()
        return {"word": self.word(positive, negative), "estimate_pp": _pp(self.estimate()),
                "ci_pp": [_pp(low), _pp(high)], "p": self.p_value(), "tost_p": self.tost_p()}

    def minimum_detectable_effect(self, power: float = POWER) -> float | None:
        """Smallest true effect this test would decide with probability ``power`` (noncentral t
        at the observed se and df)."""
        if not self.testable() or self.alpha <= 0:  # no alpha left: nothing can be detected
            return None
        return _noncentrality(self.n - 1, self.alpha, power) * self.se()

    def seeds_needed(self, power: float = POWER, most: int = 10_000) -> int | None:
        """Seeds at which an effect of the observed size would be decided with ``power`` at this
        alpha (the observed sd held fixed); None when the estimate is 0 or more than ``most``."""
        if not self.testable() or self.estimate() == 0 or self.alpha <= 0:
            return None
        sd, effect = self._moments[1], abs(self.estimate())
        # The normal approximation is a lower bound (t quantiles are larger): search up from there.
        z = scipy_stats.norm.ppf(1 - self.alpha / 2) + scipy_stats.norm.ppf(power)
        start = max(2, math.floor((z * sd / effect) ** 2))
        # t quantiles exceed the normal one by a little past a few seeds: a short search suffices.
        for n in range(start, min(most, start + 100) + 1):
            if _noncentrality(n - 1, self.alpha, power) * sd / math.sqrt(n) <= effect:
                return n
        return None


def _noncentrality(df: int, alpha: float, power: float) -> float:
    """The noncentrality at which the two-sided level-alpha t test on ``df`` has ``power``."""
    return noncentrality_for_power(df, float(scipy_stats.t.ppf(1 - alpha / 2, df)), power)


# ---------------------------------------------------------------- the contrasts, per seed


def _value(cell: Cell | None, seed: int) -> float | None:
    row = (cell or {}).get(seed)
    return None if row is None else row.get(PRIMARY_METRIC)


def primary_contrasts(students: Mapping[tuple[float, float], Cell], grid: Grid) -> tuple[dict[int, float], list[int]]:
    """Per seed: mean over the grid's (alpha, T) of LS-teacher minus plain-teacher student at T.

    ``students`` are the cells of the grid's loss. Returns the contrasts of the seeds that have
    every cell, and the seeds left out because some cell lacks them."""
    pairs = [(a, t) for a in grid.alphas for t in grid.temperatures if (a, t) in students]
    seeds = sorted({s for key in pairs for s in students[key]} | {s for t in grid.temperatures
                                                                 for s in students.get((PLAIN_ALPHA, t), {})})
    contrasts, incomplete = {}, []
    for seed in seeds:
        diffs = []
        for alpha, t in pairs:
            ls, plain = _value(students[(alpha, t)], seed), _value(students.get((PLAIN_ALPHA, t)), seed)
            diffs.append(None if ls is None or plain is None else ls - plain)
        if diffs and None not in diffs:
            contrasts[seed] = float(np.mean(diffs))
        else:
            incomplete.append(seed)
    return contrasts, incomplete


def precondition_contrasts(students: Mapping[tuple[float, float], Cell], alone: Cell | None,
                           temperatures: Sequence[float]) -> tuple[dict[int, float], list[int]]:
    """Per seed: plain-teacher students (mean over ``temperatures``) minus the student alone."""
    plain = [students.get((PLAIN_ALPHA, t)) for t in temperatures]
    seeds = sorted(set(alone or {}) | {s for cell in plain for s in (cell or {})})
    contrasts, incomplete = {}, []
    for seed in seeds:
        values = [_value(cell, seed) for cell in plain]
        reference = _value(alone, seed)
        if values and None not in values and reference is not None:
            contrasts[seed] = float(np.mean(values)) - reference
        else:
            incomplete.append(seed)
    return contrasts, incomplete


def _pp(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else 100 * value


def decision(question: str, contrasts: Mapping[int, float], incomplete: list[int], alpha: float, margin: float,
             positive: str, negative: str) -> dict[str, Any]:
    """The JSON entry of one tested contrast: word, estimate and interval in pp, n, p and more."""
    test = SeedTest(tuple(contrasts[s] for s in sorted(contrasts)), alpha, margin)
    return {"question": question, **test.summary(positive, negative), "level": 1 - alpha, "alpha": alpha,
            "n": test.n, "margin_pp": 100 * margin, "se_pp": _pp(test.se()),
            "mde_pp": _pp(test.minimum_detectable_effect()), "seeds_needed": test.seeds_needed(),
            "per_seed": [{"seed": s, "contrast_pp": 100 * contrasts[s]} for s in sorted(contrasts)],
            "incomplete_seeds": incomplete}
