"""Accuracy held equal: the LS effect on students at equal teacher accuracy.

A raw paired difference mixes two things: the LS teacher may be more (or less) accurate, and a more
accurate teacher tends to give a better student. To compare at equal accuracy without training
more teachers, for each temperature T this fits, over every teacher's students at T (one row per
teacher alpha and seed),

    student test acc = b0 + b_acc * (teacher test acc - mean) + b_alpha[alpha] + b_seed[seed]

by ordinary least squares, alpha and seed as factors (plain teacher and first seed = reference);
b_alpha is the LS effect at equal teacher accuracy, with a t interval on df = rows - parameters.
Seeds are the replication unit: the seed term absorbs what the students of one seed share (their
initialisation and data order), so the comparison stays paired as science.md §6 asks; with one LS
alpha it is exactly the regression of the paired difference on the teachers' accuracy difference,
whose intercept is the difference at equal teacher accuracy. The assumption is that student accuracy
is linear in teacher accuracy, with one slope for every alpha, over the narrow range of teacher
accuracies observed (reported as ``teacher_acc_range``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy.linalg import solve_triangular

from kd_ls.verdict.cells import PLAIN_ALPHA, PRIMARY_METRIC as METRIC, Cell
from kd_ls.verdict.stats import LEVEL, Estimate, t_quantile

Observation = tuple[float, int, float, float]  # (teacher alpha, seed, teacher acc, student acc)


@dataclass(frozen=True)
class Fit:
    """An OLS fit: coefficients, their covariance and the residual degrees of freedom."""

    coefficients: np.ndarray
    covariance: np.ndarray
    df: int


def ols(design: np.ndarray, response: np.ndarray) -> Fit | None:
    """Least squares through the QR decomposition (stable where the normal equations are not);
    None when the design is rank-deficient, since then some coefficient is not identified."""
    rows, parameters = design.shape
    if rows < parameters or np.linalg.matrix_rank(design) < parameters:
        return None
    q, r = np.linalg.qr(design)
    coefficients = solve_triangular(r, q.T @ response)
    residuals = response - design @ coefficients
    df = rows - parameters
    variance = float(residuals @ residuals) / df if df > 0 else math.nan
    r_inverse = solve_triangular(r, np.eye(parameters))
    return Fit(coefficients, variance * (r_inverse @ r_inverse.T), df)


def observations(students: Mapping[tuple[float, float], Cell], teachers: Mapping[float, Cell],
                 temperature: float) -> list[Observation]:
    """Every student at ``temperature`` whose own teacher (same alpha and seed) reports accuracy."""
    found = []
    for (alpha, t), cell in sorted(students.items()):
        for seed, row in sorted(cell.items()):
            teacher = teachers.get(alpha, {}).get(seed)
            if t == temperature and row.get(METRIC) is not None and teacher and teacher.get(METRIC) is not None:
                found.append((alpha, seed, teacher[METRIC], row[METRIC]))
    return found


def _design(found: list[Observation], ls_alphas: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Columns: intercept, centred teacher accuracy, one indicator per LS alpha, one per seed but the first."""
    teacher = np.array([obs[2] for obs in found])
    columns = [np.ones(len(found)), teacher - teacher.mean()]
    columns += [np.array([float(obs[0] == alpha) for obs in found]) for alpha in ls_alphas]
    columns += [np.array([float(obs[1] == seed) for obs in found]) for seed in sorted({obs[1] for obs in found})[1:]]
    return np.column_stack(columns), np.array([obs[3] for obs in found])


def _missing(temperature: float, alpha: float, found: list[Observation], reason: str) -> tuple[dict, Estimate]:
    """An entry that could not be fitted, with the same keys as a fitted one (and df 0)."""
    seeds = len({obs[1] for obs in found})
    entry = {"temperature": temperature, "alpha": alpha, "effect": None, "n": len(found), "seeds": seeds,
             "slope": {"value": None, "low": None, "high": None, "se": None}, "teacher_acc_range": None, "missing": reason}
    return entry, Estimate(math.nan, math.nan, 0, seeds)


def _json(value: float) -> float | None:
    """JSON has no NaN: an unknown number is null."""
    return None if math.isnan(value) else float(value)


def matched_at(temperature: float, found: list[Observation],
               ls_alphas: list[float]) -> list[tuple[dict[str, Any], Estimate]]:
    """One (entry, estimate of b_alpha) per LS alpha in ``ls_alphas``, fitted on ``found``."""
    fitted = sorted({obs[0] for obs in found} - {PLAIN_ALPHA})
    absent = [_missing(temperature, a, found, f"no alpha={a:g} students with their teacher's {METRIC}")
              for a in ls_alphas if a not in fitted]
    if PLAIN_ALPHA not in {obs[0] for obs in found}:
        reason = f"no plain-teacher students with their teacher's {METRIC} at T={temperature:g}"
        return [_missing(temperature, a, found, reason) for a in fitted] + absent
    design, response = _design(found, fitted)
    fit = ols(design, response)
    if fit is None:
        reason = "teacher accuracy cannot be separated from alpha (too few seeds, or equal teacher accuracies)"
        return [_missing(temperature, a, found, reason) for a in fitted] + absent
    if fit.df < 1:
        # An exactly determined fit passes through every point: its coefficients are not estimates.
        reason = f"no residual degrees of freedom ({len(found)} rows, {design.shape[1]} parameters)"
        return [_missing(temperature, a, found, reason) for a in fitted] + absent
    seeds = len({obs[1] for obs in found})
    quantile = t_quantile(fit.df, (1 - LEVEL) / 2)
    se = np.sqrt(np.diag(fit.covariance))
    slope = {"value": float(fit.coefficients[1]), "low": _json(fit.coefficients[1] - quantile * se[1]),
             "high": _json(fit.coefficients[1] + quantile * se[1]), "se": _json(se[1])}
    accuracies = [obs[2] for obs in found]
    results = []
    for column, alpha in enumerate(fitted, start=2):
        entry = {"temperature": temperature, "alpha": alpha, "effect": float(fit.coefficients[column]),
                 "n": len(found), "seeds": seeds, "slope": slope,
                 "teacher_acc_range": [min(accuracies), max(accuracies)], "missing": None}
        estimate = Estimate(float(fit.coefficients[column]), float(se[column]), fit.df, seeds,
                            rows_per_seed=len(found) / seeds, parameters=2 + len(fitted) - 1, parameters_per_seed=1)
        results.append((entry, estimate))
    return sorted(results + absent, key=lambda pair: pair[0]["alpha"])


def accuracy_matched(students: Mapping[tuple[float, float], Cell],
                     teachers: Mapping[float, Cell]) -> list[tuple[dict[str, Any], Estimate]]:
    """The accuracy-matched LS effect for every temperature and LS alpha the study distilled."""
    temperatures = sorted({t for alpha, t in students if alpha != PLAIN_ALPHA})
    return [pair for t in temperatures
            for pair in matched_at(t, observations(students, teachers, t),
                                   sorted(a for a, at in students if at == t and a != PLAIN_ALPHA))]
