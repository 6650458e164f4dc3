"""The secondary family (kd_ls.verdict.family): Holm's decisions, Bonferroni intervals, words,
minimum detectable effect and seeds needed, each against an independent reference (the step-down
written out by hand, scipy directly, a simulation, a direct search)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from kd_ls.verdict.family import (RESOLUTION, Family, assess, decide_family, family_of, holm, minimum_detectable_effect,
                                  p_value, seeds_needed)
from kd_ls.verdict.stats import Estimate, mean_estimate

DIFFS = [-0.012, -0.020, -0.031, -0.008, -0.017]  # hand-made paired differences (fractions)


def test_bonferroni_interval_matches_scipy_t_interval():
    estimate = mean_estimate(DIFFS)
    for m in (1, 3, 7):
        entry = assess(estimate, Family(m))
        expected = stats.t.interval(1 - 0.05 / m, len(DIFFS) - 1, loc=np.mean(DIFFS), scale=stats.sem(DIFFS))
        assert (entry["family_low"], entry["family_high"]) == pytest.approx(expected)
        assert (entry["low"], entry["high"]) == pytest.approx(
            stats.t.interval(0.95, len(DIFFS) - 1, loc=np.mean(DIFFS), scale=stats.sem(DIFFS)))
        assert entry["df"] == 4 and entry["se"] == pytest.approx(stats.sem(DIFFS))


def test_family_counts_only_comparisons_with_an_interval():
    estimates = [mean_estimate(DIFFS), mean_estimate([0.1]), mean_estimate([]), mean_estimate([0.0, 0.01])]
    family = family_of(estimates)
    assert family.size == 2
    assert family.describe()["per_comparison_level"] == pytest.approx(1 - 0.05 / 2)


def _holm_by_hand(p_values, level=0.05):
    """Holm's step-down as in Holm (1979): sort, reject while p_(i) <= level / (m - i), stop at the first
    that is not; adjusted p_(i) = max over j <= i of min(1, (m - j) * p_(j))."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    reject, adjusted, running, going = [False] * m, [0.0] * m, 0.0, True
    for rank, i in enumerate(order):
        going = going and p_values[i] <= level / (m - rank)
        reject[i] = going
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return reject, adjusted


@pytest.mark.parametrize("p_values", [[0.001, 0.04, 0.03, 0.2], [0.01, 0.011, 0.012, 0.013, 0.9], [0.5, 0.6],
                                      [0.0001, 0.0002, 0.049]])
def test_holm_matches_the_step_down_written_out(p_values):
    reject, adjusted = holm(p_values)
    expected_reject, expected_adjusted = _holm_by_hand(p_values)
    assert reject == expected_reject
    assert adjusted == pytest.approx(expected_adjusted)


def test_holm_decides_more_than_bonferroni_never_less():
    p_values = [0.010, 0.013, 0.016, 0.5]  # Bonferroni (0.0125) rejects one; Holm steps on to three
    reject, _ = holm(p_values)
    assert reject == [True, True, True, False]
    assert sum(p <= 0.05 / len(p_values) for p in p_values) == 1


def test_p_value_is_scipy_two_sided_t_test():
    estimate = mean_estimate(DIFFS)
    assert p_value(estimate) == pytest.approx(stats.ttest_1samp(DIFFS, 0.0).pvalue)


def test_words_come_from_holm_and_never_say_no_difference():
    clear = ({}, mean_estimate([-0.020, -0.021, -0.019, -0.022]))
    tight_null = ({}, mean_estimate([0.0001, -0.0001, 0.0002, -0.0002, 0.0]))
    single = ({}, mean_estimate([0.3]))
    decide_family([clear, tight_null, single])
    assert clear[0]["verdict"] == "worse" and clear[0]["holm_decided"]
    assert tight_null[0]["verdict"] == "undecided"  # a tight interval round 0 is no equivalence test
    assert single[0]["verdict"] == "undecided (n = 1)" and single[0]["p"] is None


def test_a_95_percent_decision_can_be_undecided_in_the_family():
    estimate = mean_estimate([-0.010, -0.014, -0.006])  # p = 0.03 alone; Holm over 10 needs 0.005
    entries = [({}, estimate)] + [({}, mean_estimate([0.01, -0.01, 0.02])) for _ in range(9)]
    decide_family(entries)
    entry = entries[0][0]
    assert entry["high"] < 0 < entry["family_high"]
    assert entry["verdict"] == "undecided" and not entry["holm_decided"]


def test_minimum_detectable_effect_has_80_percent_power_by_simulation():
    n, sd, m = 5, 0.01, 4
    estimate = Estimate(0.0, sd / math.sqrt(n), n - 1, n)
    mde = minimum_detectable_effect(estimate, Family(m))
    rng = np.random.default_rng(0)
    samples = rng.normal(mde, sd, size=(200_000, n))
    t = samples.mean(1) / (samples.std(1, ddof=1) / math.sqrt(n))
    rejected = np.abs(t) > stats.t.ppf(1 - 0.05 / (2 * m), n - 1)
    assert rejected.mean() == pytest.approx(0.80, abs=0.005)
    # Heavier t tails: more than the normal approximation (z_{1-a/2m} + z_0.8) * se would say.
    assert mde > (stats.norm.ppf(1 - 0.05 / (2 * m)) + stats.norm.ppf(0.8)) * sd / math.sqrt(n)


@pytest.mark.parametrize(("df", "m"), [(2, 1), (4, 3), (19, 2)])
def test_minimum_detectable_effect_matches_scipy_nct_power(df, m):
    estimate = Estimate(0.0, 0.003, df, df + 1)
    mde = minimum_detectable_effect(estimate, Family(m))
    q = stats.t.ppf(1 - 0.05 / (2 * m), df)
    nc = mde / 0.003
    power = 1 - stats.nct.cdf(q, df, nc) + stats.nct.cdf(-q, df, nc)  # the textbook form (finite here)
    assert power == pytest.approx(0.8, abs=1e-6)


def _direct_seeds(sd: float, m: int) -> int:
    """Smallest n >= 2 with t_{1-0.05/2m, n-1} * sd / sqrt(n) <= 0.5 pp, by trying every n."""
    n = 2
    while stats.t.ppf(1 - 0.05 / (2 * m), n - 1) * sd / math.sqrt(n) > RESOLUTION:
        n += 1
    return n


@pytest.mark.parametrize(("sd", "m"), [(0.004, 1), (0.01, 3), (0.02, 8), (0.001, 5)])
def test_seeds_needed_is_the_smallest_n_resolving_half_a_point(sd, m):
    n_now = 3
    estimate = Estimate(0.0, sd / math.sqrt(n_now), n_now - 1, n_now)
    assert seeds_needed(estimate, Family(m)) == _direct_seeds(sd, m)


def test_seeds_needed_for_a_fit_with_a_seed_term():
    # 3 rows per seed, 1 parameter per seed, 3 more (intercept, slope, one alpha): df(S) = 2S - 3.
    estimate = Estimate(0.0, 0.004, 2 * 4 - 3, 4, rows_per_seed=3, parameters=3, parameters_per_seed=1)
    found = seeds_needed(estimate, Family(6))

    def half(seeds: int) -> float:
        return stats.t.ppf(1 - 0.05 / 12, 2 * seeds - 3) * 0.004 * math.sqrt(4 / seeds)

    assert half(found) <= RESOLUTION < half(found - 1)


def test_no_spread_gives_no_mde_or_seeds():
    one = mean_estimate([0.3])
    assert minimum_detectable_effect(one, Family(1)) is None and seeds_needed(one, Family(1)) is None
