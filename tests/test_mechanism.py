"""The mechanism table (kd_ls.verdict.mechanism): Pearson r and Fisher-z intervals against
scipy.stats.pearsonr, gains paired by seed, exploratory words (never "no relation"), and the
sentence Müller's prediction gets."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from kd_ls.verdict.mechanism import correlation
from kd_ls.verdict.build import build_verdict


def test_correlation_matches_scipy_pearsonr():
    rng = np.random.default_rng(3)
    x = rng.normal(size=12)
    y = 0.6 * x + rng.normal(size=12)
    entry = correlation([{"x": a, "gain": b} for a, b in zip(x, y)])
    reference = stats.pearsonr(x, y)
    assert entry["r"] == pytest.approx(reference.statistic)
    assert (entry["low"], entry["high"]) == pytest.approx(tuple(reference.confidence_interval(0.95)))
    assert entry["n"] == 12


def test_an_interval_that_rules_nothing_out_is_undecided_not_absent():
    # r = +0.60 on n = 6 (like +0.53 [-0.82, +0.98] in a real study): the 95% interval spans most of [-1, 1].
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    y = np.array([0.0, 2.4, -0.9, 1.9, 3.1, 2.6])
    entry = correlation([{"x": a, "gain": b} for a, b in zip(x, y)])
    assert entry["low"] < 0 < entry["high"] and entry["verdict"] == "undecided"


def test_too_few_teachers_are_undecided():
    entry = correlation([{"x": float(i), "gain": float(i)} for i in range(3)])
    assert entry["verdict"] == "undecided (n = 3)" and entry["low"] is None


def _rows():
    """Two LS alphas x 6 seeds at T=2. Students' gain over the plain-teacher student of the same seed
    falls with the teacher's R² (as Müller predicts), rises with its NC1 (as predicted) and falls
    with its mutual information (against the prediction); ECE is unrelated noise."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(6):
        plain_acc = 0.80 + 0.01 * rng.normal()
        rows.append({"role": "student", "status": "done", "seed": seed, "alpha": 0.0, "teacher_alpha": 0.0,
                     "temperature": 2.0, "test_acc": plain_acc})
        for alpha in (0.1, 0.2):
            tightness = alpha + 0.05 * rng.normal()
            gain = -0.1 * tightness + 0.0005 * rng.normal()
            rows.append({"role": "student", "status": "done", "seed": seed, "alpha": 0.0, "teacher_alpha": alpha,
                         "temperature": 2.0, "test_acc": plain_acc + gain})
            rows.append({"role": "teacher", "status": "done", "seed": seed, "alpha": alpha, "test_acc": 0.9,
                         "test_r2": 0.3 + tightness, "test_nc1": 1.0 - tightness, "mutual_information": 2 + tightness,
                         "test_ece": 0.03 + 0.01 * rng.random(), "test_smoothness_T2": 0.2})
    return rows


def test_mechanism_table_and_conclusions():
    mechanism = build_verdict(_rows())["mechanism"]
    rows = {r["measure"]: r for r in mechanism["rows"]}
    conclusions = {c["measure"]: c["conclusion"] for c in mechanism["conclusions"]}
    assert rows["r2"]["n"] == 12 and rows["r2"]["verdict"] == "negative (exploratory)" and conclusions["r2"] == "holds"
    assert rows["nc1"]["verdict"] == "positive (exploratory)" and conclusions["nc1"] == "holds"
    assert rows["mutual_information"]["verdict"] == "negative (exploratory)"
    assert conclusions["mutual_information"] == "contradicted"
    assert rows["smoothness"]["verdict"] == "undecided (no spread)"
    assert conclusions["ece"] == "no prediction"
    # The gain is the paired difference: reproduce r for R² from the rows directly.
    data = _rows()
    plain = {r["seed"]: r["test_acc"] for r in data if r["role"] == "student" and r["teacher_alpha"] == 0.0}
    teachers = {(r["alpha"], r["seed"]): r["test_r2"] for r in data if r["role"] == "teacher"}
    pairs = [(teachers[(r["teacher_alpha"], r["seed"])], r["test_acc"] - plain[r["seed"]])
             for r in data if r["role"] == "student" and r["teacher_alpha"] > 0]
    assert rows["r2"]["r"] == pytest.approx(stats.pearsonr(*zip(*pairs)).statistic)
    assert "no correction" in mechanism["exploratory"]


def test_mechanism_sentences_are_in_the_summary():
    summary = build_verdict(_rows())["summary"]
    [line] = [s for s in summary if s.startswith("Mechanism, class separation R²")]
    assert "Müller's account predicts smaller gains from higher values: holds" in line and "n=12" in line
