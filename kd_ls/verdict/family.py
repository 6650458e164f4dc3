"""The secondary comparisons, decided together by Holm's step-down procedure, and how far each is
from a decision.

Multiplicity: Holm (1979). With m comparisons and their two-sided t-test p-values sorted
p_(1) <= ... <= p_(m), reject while p_(i) <= 0.05 / (m - i + 1). The chance of any false decision is
at most 5% whatever the dependence between the comparisons (they share the plain-teacher students),
as with Bonferroni, and Holm rejects everything Bonferroni rejects and more (statsmodels'
`multipletests(method="holm")`; the tests check it against the step-down written out by hand). m
counts the comparisons actually made: those with a p-value (n = 1 or df < 1 gives none, and cannot
produce a false decision).

Holm decides but gives no intervals. Each comparison shows its own 95% interval, which is
exploratory, and a Bonferroni interval (t quantile at 1 - 0.05 / (2m)), which holds for all m
together and is what the forest plot draws as the family-wise interval.

Words: "worse" / "better" when Holm rejects; otherwise "undecided", with the minimum detectable
effect (80% power at Bonferroni's level, Holm's strictest step) and the seeds at which the
family-wise half-width would be at most RESOLUTION, saying how far it is from a decision. A
secondary is never called "no difference": no equivalence test is made for it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from scipy import optimize
from scipy import stats as scipy_stats

from kd_ls.verdict.stats import BETTER, LEVEL, UNDECIDED, WORSE, Estimate, t_quantile

POWER = 0.8
RESOLUTION = 0.005  # 0.5 pp: the family-wise half-width "seeds needed" aims at
NO_SPREAD = 1e-6  # 0.0001 pp: a spread this small is float32 rounding of equal accuracies, not a spread
MAX_SEEDS = 100_000  # past this, "seeds needed" is reported as unknown (null)
MDE_METHOD = "noncentral t, two-sided, at the family-wise level, with the observed standard error and df"


@dataclass(frozen=True)
class Family:
    """m comparisons decided together at ``level`` (Holm), whose Bonferroni intervals hold together
    with probability >= ``level``."""

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
        return {"method": "holm", "m": self.size, "level": self.level,
                "interval": "bonferroni (simultaneous)", "per_comparison_level": 1 - 2 * self.tail}


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


def noncentrality_for_power(df: float, quantile: float, power: float = POWER) -> float:
    """The noncentrality at which the two-sided t test with critical value ``quantile`` on ``df``
    degrees of freedom rejects with probability ``power`` (infinite for an infinite quantile: a test
    at level 0 never rejects)."""
    if not math.isfinite(quantile):
        return math.inf
    high = 1.0
    while _power(high, df, quantile) < power:
        high *= 2
    return float(optimize.brentq(lambda nc: _power(nc, df, quantile) - power, 0.0, high, xtol=1e-10))


def minimum_detectable_effect(estimate: Estimate, family: Family, power: float = POWER) -> float | None:
    """Smallest true effect the comparison would detect with probability ``power`` at the family
    level: the noncentrality solving power(nc) = ``power`` for t on its df, times its se."""
    if not decidable(estimate):
        return None
    return noncentrality_for_power(estimate.df, family.quantile(estimate.df), power) * estimate.se


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


def p_value(estimate: Estimate) -> float | None:
    """Two-sided p of the t test of a zero effect; None without an interval, or without spread
    (identical per-seed values, common on a small test set's accuracy grid: no t statistic exists)."""
    if not decidable(estimate) or estimate.se <= NO_SPREAD:
        return None
    return float(2 * scipy_stats.t.sf(abs(estimate.value / estimate.se), estimate.df))


def holm(p_values: list[float | None], level: float = LEVEL) -> tuple[list[bool], list[float | None]]:
    """Holm's decisions and adjusted p-values (statsmodels), None entries left undecided."""
    from statsmodels.stats.multitest import multipletests

    made = [i for i, p in enumerate(p_values) if p is not None]
    reject, adjusted = [False] * len(p_values), [None] * len(p_values)
    if made:
        decided, corrected, _, _ = multipletests([p_values[i] for i in made], alpha=1 - level, method="holm")
        for i, d, c in zip(made, decided, corrected):
            reject[i], adjusted[i] = bool(d), float(c)
    return reject, adjusted


def word(estimate: Estimate, decided: bool) -> str:
    """The secondary's word: worse / better when Holm decided it, else undecided (with why when
    there is no test at all)."""
    if not decidable(estimate):
        why = f"n = {estimate.seeds}" if estimate.seeds <= 1 else f"df = {max(estimate.df, 0)}"
        return f"{UNDECIDED} ({why})"
    if estimate.se <= NO_SPREAD:
        return f"{UNDECIDED} (no spread)"
    if decided:
        return WORSE if estimate.value < 0 else BETTER
    return UNDECIDED


def _json(value: float) -> float | None:
    """JSON has no NaN: an unknown number is null."""
    return None if value is None or math.isnan(value) else value


def assess(estimate: Estimate, family: Family) -> dict[str, Any]:
    """Everything the verdict reports about one comparison beside its value and word: se, df, p, the
    95% (exploratory) and Bonferroni family-wise intervals, the minimum detectable effect and the
    seeds needed."""
    low, high = estimate.interval(t_quantile(estimate.df, (1 - LEVEL) / 2))
    family_low, family_high = estimate.interval(family.quantile(estimate.df))
    return {
        "se": _json(estimate.se),
        "df": max(estimate.df, 0),
        "p": p_value(estimate),
        "low": _json(low),
        "high": _json(high),
        "family_low": _json(family_low),
        "family_high": _json(family_high),
        "mde": minimum_detectable_effect(estimate, family),
        "seeds_needed": seeds_needed(estimate, family),
    }


def decide_family(comparisons: list[tuple[dict[str, Any], Estimate]]) -> Family:
    """Assess every comparison and decide them together by Holm (in place: each entry gets its
    intervals, p, `p_holm`, `holm_decided` and `verdict`); return the family."""
    family = family_of(estimate for _, estimate in comparisons)
    for entry, estimate in comparisons:
        entry.update(assess(estimate, family))
    decided, adjusted = holm([entry["p"] for entry, _ in comparisons])
    for (entry, estimate), d, a in zip(comparisons, decided, adjusted):
        entry.update({"p_holm": a, "holm_decided": d, "verdict": word(estimate, d)})
    return family
