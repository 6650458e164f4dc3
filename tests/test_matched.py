"""The accuracy-matched comparison (kd_ls.verdict.matched): OLS against numpy's lstsq and the closed
form, on constructed data whose LS effect at equal teacher accuracy is known."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from kd_ls.verdict.matched import ols
from kd_ls.verdict.build import build_verdict

SEEDS = range(8)


def rows_with(effect: float, ls_advantage: float, noise: float = 0.0005, seed_offsets: bool = True):
    """Teachers: plain accuracy 0.90 + 0.004 * (seed wiggle), LS teacher ``ls_advantage`` more accurate.
    Students at T=2: 0.5 * teacher accuracy + ``effect`` for an LS teacher + a per-seed offset shared by
    both teachers' students (the paired design) + small noise."""
    rng = np.random.default_rng(1)
    rows = []
    for seed in SEEDS:
        offset = 0.01 * rng.standard_normal() if seed_offsets else 0.0
        for alpha in (0.0, 0.1):
            teacher_acc = 0.90 + 0.004 * rng.standard_normal() + (ls_advantage if alpha else 0.0)
            acc = 0.5 * teacher_acc + (effect if alpha else 0.0) + offset + noise * rng.standard_normal()
            rows.append({"role": "teacher", "status": "done", "seed": seed, "alpha": alpha, "test_acc": teacher_acc})
            rows.append({"role": "student", "status": "done", "seed": seed, "alpha": 0.0, "teacher_alpha": alpha,
                         "temperature": 2.0, "test_acc": acc, "val_acc": acc})
    return rows


def design_of(rows):
    """The design the study fits, rebuilt here independently: intercept, centred teacher acc, LS
    indicator, seed indicators (first seed the reference)."""
    teachers = {(r["alpha"], r["seed"]): r["test_acc"] for r in rows if r["role"] == "teacher"}
    students = [r for r in rows if r["role"] == "student"]
    x = np.array([teachers[(r["teacher_alpha"], r["seed"])] for r in students])
    columns = [np.ones(len(students)), x - x.mean(), [float(r["teacher_alpha"] > 0) for r in students]]
    columns += [[float(r["seed"] == s) for r in students] for s in list(SEEDS)[1:]]
    return np.column_stack(columns), np.array([r["test_acc"] for r in students])


def test_ols_matches_lstsq_and_the_closed_form():
    rng = np.random.default_rng(0)
    design = np.column_stack([np.ones(20), rng.normal(size=20), rng.integers(0, 2, 20)])
    response = design @ [1.0, 0.3, -0.2] + 0.1 * rng.normal(size=20)
    fit = ols(design, response)
    coefficients, residual_ss, *_ = np.linalg.lstsq(design, response, rcond=None)
    assert fit.coefficients == pytest.approx(coefficients)
    assert fit.df == 17
    assert fit.covariance == pytest.approx(residual_ss[0] / 17 * np.linalg.inv(design.T @ design))


def test_rank_deficient_design_is_refused():
    design = np.column_stack([np.ones(6), np.full(6, 0.9)])  # teacher accuracy equal everywhere
    assert ols(design, np.arange(6.0)) is None


def test_known_effect_at_equal_accuracy_is_recovered():
    rows = rows_with(effect=-0.01, ls_advantage=0.0)
    [entry] = build_verdict(rows)["accuracy_matched"]
    design, response = design_of(rows)
    coefficients, residual_ss, *_ = np.linalg.lstsq(design, response, rcond=None)
    df = len(response) - design.shape[1]
    se = np.sqrt(residual_ss[0] / df * np.linalg.inv(design.T @ design)[2, 2])
    assert entry["df"] == df == 16 - (3 + 7)
    assert entry["effect"] == pytest.approx(coefficients[2])
    assert (entry["low"], entry["high"]) == pytest.approx(stats.t.interval(0.95, df, loc=coefficients[2], scale=se))
    assert entry["effect"] == pytest.approx(-0.01, abs=0.002)
    assert entry["slope"]["value"] == pytest.approx(0.5, abs=0.15)
    assert entry["verdict"] == "worse"


def test_more_accurate_ls_teacher_raw_gain_but_no_effect_at_equal_accuracy():
    # The LS teacher is 4 pp more accurate and LS itself does nothing: students of the LS teacher are
    # ~2 pp better in the raw paired difference, and ~0 at equal teacher accuracy.
    verdict = build_verdict(rows_with(effect=0.0, ls_advantage=0.04))
    [paired] = verdict["paired"]
    [matched] = verdict["accuracy_matched"]
    assert paired["mean"] == pytest.approx(0.02, abs=0.002) and paired["verdict"] == "better"
    assert abs(matched["effect"]) < 0.003
    assert matched["family_low"] < 0 < matched["family_high"]
    assert matched["teacher_acc_range"][1] - matched["teacher_acc_range"][0] > 0.03


def test_df_below_one_is_undecided():
    rows = [r for r in rows_with(effect=-0.01, ls_advantage=0.0) if r["seed"] < 2]  # 4 rows, 4 parameters
    [entry] = build_verdict(rows)["accuracy_matched"]
    assert entry["df"] == 0 and entry["low"] is None
    assert entry["verdict"] == "undecided (df = 0)"


def test_equal_teacher_accuracies_are_marked_missing():
    rows = rows_with(effect=-0.01, ls_advantage=0.0)
    for row in rows:
        if row["role"] == "teacher":
            row["test_acc"] = 0.9
    [entry] = build_verdict(rows)["accuracy_matched"]
    assert entry["effect"] is None and "cannot be separated" in entry["missing"]
    assert entry["verdict"].startswith("undecided")
