"""The mechanism, measured: do tighter, less informative teachers give smaller gains?

For every LS teacher (alpha > 0, each seed) and temperature T, its students' *gain* is its student's
test accuracy minus the plain teacher's student's at the same seed and T (the paired difference).
Each measure of the teacher (tightness R² and NC1, mutual information, the smoothness index at the
same T, ECE) is correlated with that gain across teachers, **per T**: pooling over T would count each
teacher once per temperature, and its points are not independent. The statistic is Pearson's r with a
Fisher-z interval (normal on atanh r, se = 1 / sqrt(n - 3), so n >= 4 is needed), at 95%. The table
is exploratory: no correction is made across its correlations, and its words say only which way a
95% interval points ("positive" / "negative", exploratory) or "undecided"; a relation is never
called absent, since no equivalence rule is applied to it. Plain teachers are left out: their gain
is 0 by construction, not a measurement.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy import stats as scipy_stats

from kd_ls.verdict.cells import PLAIN_ALPHA, PRIMARY_METRIC as METRIC, Cell
from kd_ls.verdict.stats import LEVEL, UNDECIDED

MIN_N = 4  # the Fisher-z standard error 1 / sqrt(n - 3) needs n > 3
MIN_R = 3  # two points always give r = ±1, which says nothing
POSITIVE, NEGATIVE = "positive (exploratory)", "negative (exploratory)"


@dataclass(frozen=True)
class Measure:
    """A teacher measure: its results column (``{t}`` stands for the temperature), words, and the sign
    of r that Müller's account predicts (None where it predicts nothing)."""

    name: str
    column: str
    label: str
    predicted: int | None

    def column_at(self, temperature: float) -> str:
        """The results column of this measure at a temperature."""
        return self.column.format(t=f"{temperature:g}")


MEASURES = (
    Measure("r2", "test_r2", "class separation R² (higher = tighter)", -1),
    Measure("nc1", "test_nc1", "NC1 (lower = tighter)", +1),
    Measure("mutual_information", "mutual_information", "mutual information (higher = more informative)", +1),
    Measure("smoothness", "test_smoothness_T{t}", "smoothness index at the same T (higher = softer)", None),
    Measure("ece", "test_ece", "ECE (lower = better calibrated)", None),
)

Point = dict[str, float]


def gain_points(students: Mapping[tuple[float, float], Cell], teachers: Mapping[float, Cell],
                measure: Measure, temperature: float) -> list[Point]:
    """(measure, gain) for every LS teacher with a student and a plain-teacher student at this seed and T."""
    plain = students.get((PLAIN_ALPHA, temperature), {})
    points = []
    for (alpha, t), cell in sorted(students.items()):
        if t != temperature or alpha == PLAIN_ALPHA:
            continue
        for seed, row in sorted(cell.items()):
            teacher = teachers.get(alpha, {}).get(seed) or {}
            value = teacher.get(measure.column_at(temperature))
            reference = plain.get(seed, {}).get(METRIC)
            if value is not None and row.get(METRIC) is not None and reference is not None:
                points.append({"alpha": alpha, "seed": seed, "temperature": temperature, "x": value,
                               "gain": row[METRIC] - reference})
    return points


def _fisher_interval(r: float, n: int, quantile: float) -> tuple[float, float]:
    """tanh(atanh r -/+ quantile / sqrt(n - 3)); a perfect correlation has a zero-width interval."""
    if abs(r) >= 1:
        return r, r
    z, half = math.atanh(r), quantile / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def _pearson(points: list[Point]) -> float:
    """Pearson's r of x and gain; nan with fewer than MIN_R points or when either has no spread."""
    x = np.array([p["x"] for p in points])
    y = np.array([p["gain"] for p in points])
    if len(points) < MIN_R or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def correlation(points: list[Point]) -> dict[str, Any]:
    """r, its 95% Fisher-z interval, n, and the (exploratory) word it gives."""
    n, r = len(points), _pearson(points)
    entry: dict[str, Any] = {"n": n, "r": None if math.isnan(r) else r, "low": None, "high": None}
    if n < MIN_N or math.isnan(r):
        entry["verdict"] = f"{UNDECIDED} (n = {n})" if n < MIN_N else f"{UNDECIDED} (no spread)"
        return entry
    entry["low"], entry["high"] = _fisher_interval(r, n, float(scipy_stats.norm.ppf(0.5 + LEVEL / 2)))
    if entry["high"] < 0:
        entry["verdict"] = NEGATIVE
    elif entry["low"] > 0:
        entry["verdict"] = POSITIVE
    else:
        entry["verdict"] = UNDECIDED
    return entry


def _conclusion(measure: Measure, rows: list[dict[str, Any]]) -> str:
    """Whether Müller's predicted sign holds, from the exploratory words."""
    signs = {NEGATIVE: -1, POSITIVE: +1}
    decided = [signs[row["verdict"]] for row in rows if row["verdict"] in signs]
    if measure.predicted is None:
        return "no prediction"
    if any(sign != measure.predicted for sign in decided):
        return "contradicted"
    return "holds" if decided else "not shown"


def mechanism(students: Mapping[tuple[float, float], Cell], teachers: Mapping[float, Cell]) -> dict[str, Any]:
    """The mechanism table: per measure and T a correlation with the gain; per measure a conclusion."""
    temperatures = sorted({t for alpha, t in students if alpha != PLAIN_ALPHA})
    points = {(m.name, t): gain_points(students, teachers, m, t) for m in MEASURES for t in temperatures}
    rows = [{"measure": m.name, "label": m.label, "temperature": t, "predicted_sign": m.predicted,
             **correlation(points[(m.name, t)])}
            for m in MEASURES for t in temperatures]
    conclusions = [{"measure": m.name, "label": m.label, "predicted_sign": m.predicted,
                    "conclusion": _conclusion(m, [row for row in rows if row["measure"] == m.name])}
                   for m in MEASURES]
    return {
        "statistic": "pearson r, Fisher-z intervals",
        "pooling": "per temperature (LS teachers x seeds at each T; plain teachers left out)",
        "gain": "LS-teacher student minus plain-teacher student, same seed and T (fraction)",
        "exploratory": "95% Fisher-z intervals, no correction across the table",
        "rows": rows,
        "conclusions": conclusions,
        "points": [{"measure": name, **p} for (name, _), found in points.items() for p in found],
    }
