"""The primary question and its precondition (kd_ls.verdict.primary, as build_verdict assembles them):
per-seed contrasts, the t test, its interval and the TOST, each against a hand computation with
scipy's t distribution; and the committed default run's primary recomputed from its results.csv."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from kd_ls.verdict.build import build_verdict
from kd_ls.verdict.primary import SeedTest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUN = ROOT / "experiments" / "default_regime" / "kd-ls_run"


def student(seed, teacher_alpha, temperature, acc, val=0.5):
    return {"role": "student", "status": "done", "seed": seed, "alpha": 0.0, "teacher_alpha": teacher_alpha,
            "temperature": temperature, "test_acc": acc, "val_acc": val}


def alone(seed, acc):
    return {"role": "baseline", "status": "done", "seed": seed, "alpha": 0.0, "temperature": None, "test_acc": acc}


def t_interval(values, level=0.95):
    """mean -/+ t_{(1+level)/2, n-1} * sd / sqrt(n), written out."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return values.mean() - half, values.mean() + half


# Seeds 0-3: plain-teacher students at T=1 and 4; LS teachers 0.1 and 0.3 at both. The LS-minus-plain
# difference of seed s at (alpha, T) is DIFF[s][(alpha, T)] (pp); the student alone trails the plain
# teacher's students by ALONE_GAP[s] pp on average.
DIFF = [{(0.1, 1): 1.0, (0.3, 1): 2.0, (0.1, 4): 0.5, (0.3, 4): 1.5},
        {(0.1, 1): 0.4, (0.3, 1): 1.2, (0.1, 4): 1.1, (0.3, 4): 0.9},
        {(0.1, 1): 2.0, (0.3, 1): 2.2, (0.1, 4): 1.4, (0.3, 4): 2.6},
        {(0.1, 1): 0.9, (0.3, 1): 1.1, (0.1, 4): 0.3, (0.3, 4): 1.7}]
ALONE_GAP = [3.0, 2.2, 4.1, 2.9]


def rows(seeds=range(4)):
    found = []
    for s in seeds:
        plain = {1: 0.80 + 0.002 * s, 4: 0.82 - 0.001 * s}
        found += [student(s, 0.0, t, acc, val=0.9 if t == 4 else 0.7) for t, acc in plain.items()]
        found += [student(s, a, t, plain[t] + DIFF[s][(a, t)] / 100) for (a, t) in DIFF[s]]
        found.append(alone(s, (plain[1] + plain[4]) / 2 - ALONE_GAP[s] / 100))
    return found


def test_primary_is_the_t_test_of_per_seed_means_over_the_grid():
    primary = build_verdict(rows())["primary"]
    contrasts = [np.mean(list(d.values())) for d in DIFF]  # pp, averaged over alpha and T
    assert [p["contrast_pp"] for p in primary["per_seed"]] == pytest.approx(contrasts)
    assert primary["estimate_pp"] == pytest.approx(np.mean(contrasts))
    assert primary["ci_pp"] == pytest.approx(t_interval(contrasts))
    t = np.mean(contrasts) / (np.std(contrasts, ddof=1) / 2)
    assert primary["p"] == pytest.approx(2 * stats.t.sf(abs(t), 3))
    assert primary["word"] == "better" and primary["n"] == 4 and primary["level"] == 0.95


def test_precondition_pooled_and_val_chosen():
    verdict = build_verdict(rows())
    pre = verdict["precondition"]
    assert [p["contrast_pp"] for p in pre["per_seed"]] == pytest.approx(ALONE_GAP)
    assert pre["ci_pp"] == pytest.approx(t_interval(ALONE_GAP)) and pre["word"] == "helps"
    design = {**verdict["design"]["declarations"][0]["design"]}
    design["precondition"] = {"mode": "val_chosen", "temperatures": [1.0, 4.0]}
    chosen = build_verdict(rows(), design=design)["precondition"]
    # T=4 has the higher val_acc: the contrast is the T=4 student minus the student alone.
    expected = [100 * (0.82 - 0.001 * s - ((0.80 + 0.002 * s + 0.82 - 0.001 * s) / 2 - ALONE_GAP[s] / 100))
                for s in range(4)]
    assert [p["contrast_pp"] for p in chosen["per_seed"]] == pytest.approx(expected)
    assert chosen["temperatures"] == [4.0]


def test_a_seed_missing_a_cell_is_left_out_not_averaged_over_fewer_cells():
    data = [r for r in rows() if not (r["seed"] == 2 and r.get("teacher_alpha") == 0.3 and r["temperature"] == 4)]
    design = build_verdict(rows())["design"]["declarations"][0]["design"]
    primary = build_verdict(data, design=design)["primary"]
    assert primary["incomplete_seeds"] == [2]
    # the design planned a look at 4 seeds; with 3 complete there is no look yet, and no word
    assert primary["look"] is None and primary["word"] == "undecided" and "first planned look" in primary["why"]


def test_equivalence_by_two_one_sided_tests():
    values = [0.0010, -0.0008, 0.0004, 0.0000, -0.0002, 0.0006]  # within ±0.1 pp
    test = SeedTest(tuple(values), alpha=0.05, margin=0.005)
    assert test.word() == "equivalent"
    # TOST at 5% rejects exactly when the 90% t interval lies inside (-margin, margin)
    low, high = t_interval(values, level=0.90)
    assert -0.005 < low and high < 0.005
    t_low = (np.mean(values) + 0.005) / stats.sem(values)
    t_high = (0.005 - np.mean(values)) / stats.sem(values)
    assert test.tost_p() == pytest.approx(max(stats.t.sf(t_low, 5), stats.t.sf(t_high, 5)))
    wide = SeedTest((0.001, -0.004, 0.006, -0.002), alpha=0.05, margin=0.005)
    assert wide.word() == "undecided"


@pytest.mark.parametrize("values", [(0.012, 0.020, 0.031, 0.008, 0.017), (-0.003, 0.001, 0.002), (0.0, 0.004, -0.001, 0.006)])
def test_seed_test_agrees_with_statsmodels(values):
    from statsmodels.stats.weightstats import DescrStatsW

    reference = DescrStatsW(np.asarray(values))
    test = SeedTest(values, alpha=0.02, margin=0.005)
    assert test.interval() == pytest.approx(reference.tconfint_mean(alpha=0.02))
    assert test.p_value() == pytest.approx(reference.ttest_mean(0.0)[1])
    assert test.tost_p() == pytest.approx(reference.ttost_mean(-0.005, 0.005)[0])


def test_no_spread_or_one_seed_is_undecided():
    assert SeedTest((0.01,), 0.05, 0.005).word() == "undecided"
    assert SeedTest((0.01, 0.01, 0.01), 0.05, 0.005).word() == "undecided"


def test_minimum_detectable_effect_has_the_stated_power_by_simulation():
    test = SeedTest((0.010, 0.016, 0.004, 0.012, 0.008), alpha=0.05, margin=0.005)
    mde, sd, n = test.minimum_detectable_effect(), np.std(test.values, ddof=1), 5
    samples = np.random.default_rng(1).normal(mde, sd, size=(100_000, n))
    t = samples.mean(1) / (samples.std(1, ddof=1) / math.sqrt(n))
    assert (np.abs(t) > stats.t.ppf(0.975, n - 1)).mean() == pytest.approx(0.80, abs=0.006)


def _by_hand_primary(results_csv: Path) -> tuple[float, float, float, int]:
    """The default study's primary from results.csv with nothing but csv and the t distribution:
    per seed, the mean over LS alphas and T of LS-teacher minus plain-teacher student accuracy."""
    with open(results_csv, newline="") as f:
        done = [r for r in csv.DictReader(f) if r["status"] == "done" and r["role"] == "student"
                and (r.get("loss") or "kd") == "kd"]
    acc = {(int(r["seed"]), float(r["teacher_alpha"]), float(r["temperature"])): float(r["test_acc"]) for r in done}
    seeds = sorted({k[0] for k in acc})
    ls = sorted({k[1] for k in acc} - {0.0})
    temperatures = sorted({k[2] for k in acc if k[1] in ls})
    contrasts = [100 * np.mean([acc[(s, a, t)] - acc[(s, 0.0, t)] for a in ls for t in temperatures]) for s in seeds]
    low, high = t_interval(contrasts)
    return float(np.mean(contrasts)), low, high, len(seeds)


def test_committed_default_run_primary_matches_a_hand_computation():
    verdict = json.loads((DEFAULT_RUN / "verdict.json").read_text())
    estimate, low, high, n = _by_hand_primary(DEFAULT_RUN / "results.csv")
    primary = verdict["primary"]
    assert primary["n"] == n
    assert primary["estimate_pp"] == pytest.approx(estimate, abs=0.01)
    if primary["level"] == 0.95:
        assert primary["ci_pp"] == pytest.approx([low, high], abs=0.01)
    assert set(primary) >= {"question", "word", "estimate_pp", "ci_pp", "n", "p", "declared_sha256"}
    assert set(verdict["precondition"]) >= {"question", "word", "estimate_pp", "ci_pp", "n", "p", "declared_sha256"}


def test_per_loss_contrasts_and_the_loss_by_ls_interaction():
    """Students of a second loss (here lskd) shift the LS effect by SHIFT[s] pp on seed s: the
    primary stays the first loss's, the per-loss contrasts and their difference are secondaries."""
    shift = [-1.0, -0.6, -1.4, -0.8]
    data = [{**r, "loss": "kd"} if r["role"] == "student" else r for r in rows()]
    for r in [r for r in data if r["role"] == "student"]:
        other = {**r, "loss": "lskd"}
        if r["teacher_alpha"] > 0:
            other["test_acc"] = r["test_acc"] + shift[r["seed"]] / 100
        data.append(other)
    verdict = build_verdict(data)
    kd = [np.mean(list(d.values())) for d in DIFF]
    assert verdict["primary"]["estimate_pp"] == pytest.approx(np.mean(kd))  # the first loss's, unchanged
    by_kind = {(e["kind"], e["loss"]): e for e in verdict["losses"]}
    assert 100 * by_kind[("loss", "kd")]["mean"] == pytest.approx(np.mean(kd))
    assert 100 * by_kind[("loss", "lskd")]["mean"] == pytest.approx(np.mean(kd) + np.mean(shift))
    interaction = by_kind[("interaction", "lskd")]
    assert interaction["reference_loss"] == "kd" and 100 * interaction["mean"] == pytest.approx(np.mean(shift))
    low, high = t_interval(shift)
    assert (100 * interaction["low"], 100 * interaction["high"]) == pytest.approx((low, high))
    assert verdict["family"]["m"] >= 3 and "p_holm" in interaction
