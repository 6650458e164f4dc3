"""The family of comparisons a verdict makes, controlled together, and how far each is from a decision.

Multiplicity: Bonferroni. With m comparisons, each family-wise interval uses the t quantile at
1 - 0.05 / (2m). By the union bound the chance that any of the m intervals misses its true value is
at most 5% whatever the dependence between them (they share the plain-teacher students, so they are
dependent). It is conservative, but simple and valid without modelling that dependence. m counts the
comparisons actually made: those with an interval (a comparison without one, n = 1 or df < 1,
cannot produce a false decision).

Words (decided by the family-wise interval only): "worse" / "better" when it excludes 0; "no
detectable difference" when it contains 0 and its half-width is at most RESOLUTION (0.5 pp), i.e.
the study could have seen a difference that size; otherwise "undecided", with the minimum
detectable effect and the seeds that would resolve RESOLUTION saying how far it is from a decision.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from scipy import optimize
from scipy import stats as scipy_stats

from kd_ls.verdict.stats import BETTER, LEVEL, NO_DIFFERENCE, UNDECIDED, WORSE, Estimate, t_quantile

POWER = 0.8
RESOLUTION = 0.005  # 0.5 pp: the half-width at which a straddling interval counts as a decision
MAX_SEEDS = 100_000  # past this, "seeds needed" is reported as unknown (null)
MDE_METHOD = "noncentral t, two-sided, at the family-wise level, with the observed standard error and df"


@dataclass(frozen=True)
class Family:
    """m comparisons whose intervals hold together with probability >= ``level`` (Bonferroni)."""

    size: int
    level: float = LEVEL

    @property
    def tail(self) -> float:
        """One tail's share of the error rate for each comparison: (1 - level) / (2m)."""
        return (1 - self.level) / (2 * max(self.size, 1))

    def quantile(self, df: float) -> float:
        """The t quantile of each family-wise interval at ``df`` degrees of freedom."""
        return t_quantile(df, self.tail)

    def describe(self) -> dict[str, Any]:
        """The family's settings as JSON."""
        return {"method": "bonferroni", "m": self.size, "level": self.level,
                "per_comparison_level": 1 - 2 * self.tail}


def decidable(estimate: Estimate) -> bool:
    """Whether the estimate has an interval (a spread estimate on at least one df)."""
    return estimate.df >= 1 and not math.isnan(estimate.se)


def family_of(estimates: Iterable[Estimate]) -> Family:
    """The family of every comparison made, i.e. every estimate that has an interval."""
    return Family(sum(1 for estimate in estimates if decidable(estimate)))


def _power(noncentrality: float, df: float, quantile: float) -> float:
    """Power of the two-sided t test; the lower tail is taken as the upper tail at -nc, where
    scipy's nct stays finite (its cdf at large nc returns nan)."""
    return float(scipy_stats.nct.sf(quantile, df, noncentrality) + scipy_stats.nct.sf(quantile, df, -noncentrality))


def minimum_detectable_effect(estimate: Estimate, family: Family, power: float = POWER) -> float | None:
    """Smallest true effect the comparison would detect with probability ``power`` at the family
    level: the noncentrality solving power(nc) = ``power`` for t on its df, times its se."""
    if not decidable(estimate):
        return None
    quantile = family.quantile(estimate.df)
    high = 1.0
    while _power(high, estimate.df, quantile) < power:
        high *= 2
    noncentrality = optimize.brentq(lambda nc: _power(nc, estimate.df, quantile) - power, 0.0, high, xtol=1e-10)
    return noncentrality * estimate.se


def seeds_needed(estimate: Estimate, family: Family, target: float = RESOLUTION) -> int | None:
    """Smallest number of seeds at which the family-wise half-width would be <= ``target`` with the
    observed spread (Estimate.se_with / df_with). The search starts at the normal-quantile bound,
    below which no t quantile can succeed, since the half-width only shrinks as seeds grow."""
    if not decidable(estimate):
        return None
    # df_with(estimate.seeds) is the fit's own df (>= 1 here), so the search finds a value.
    fewest = next(s for s in range(1, estimate.seeds + 1) if estimate.df_with(s) >= 1)
    z = float(scipy_stats.norm.ppf(1 - family.tail))
    seeds = max(fewest, math.ceil(estimate.seeds * (z * estimate.se / target) ** 2) if estimate.se > 0 else fewest)
    while seeds <= MAX_SEEDS:
        if family.quantile(estimate.df_with(seeds)) * estimate.se_with(seeds) <= target:
            return seeds
        seeds += 1
    return None


def decide(estimate: Estimate, low: float, high: float) -> str:
    """The verdict word from the family-wise interval [low, high] (see the module docstring)."""
    if not decidable(estimate):
        why = f"n = {estimate.seeds}" if estimate.seeds <= 1 else f"df = {max(estimate.df, 0)}"
        return f"{UNDECIDED} ({why})"
    if high < 0:
        return WORSE
    if low > 0:
        return BETTER
    return NO_DIFFERENCE if (high - low) / 2 <= RESOLUTION else UNDECIDED


def _json(value: float) -> float | None:
    """JSON has no NaN: an unknown number is null."""
    return None if value is None or math.isnan(value) else value


def assess(estimate: Estimate, family: Family) -> dict[str, Any]:
    """Everything the verdict reports about one comparison beside its value: se, df, the 95%
    and family-wise intervals, the minimum detectable effect, the seeds needed and the word."""
    low, high = estimate.interval(t_quantile(estimate.df, (1 - LEVEL) / 2))
    family_low, family_high = estimate.interval(family.quantile(estimate.df))
    return {
        "se": _json(estimate.se),
        "df": max(estimate.df, 0),
        "low": _json(low),
        "high": _json(high),
        "family_low": _json(family_low),
        "family_high": _json(family_high),
        "mde": minimum_detectable_effect(estimate, family),
        "seeds_needed": seeds_needed(estimate, family),
        "verdict": decide(estimate, family_low, family_high),
    }
