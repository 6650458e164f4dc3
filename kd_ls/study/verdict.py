"""The study's verdict: paired LS-teacher vs plain-teacher comparisons, Müller's protocol,
teacher and cell tables, and the sentences that state them, as JSON-ready data
(render.py turns it into markdown).

Conventions (science.md §6): students of the same seed are paired across teachers; every
mean comes with a 95% Student-t interval over seeds; the word is decided by the interval
only; accuracies are last-epoch test accuracies; the only choice made from data (Müller's
plain-teacher temperature) uses validation accuracy, never test accuracy.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from kd_ls.study.cells import Cell, alpha_cells, done_rows, metric_interval, student_cells
from kd_ls.study.stats import BETTER, WORSE, Interval, mean_interval, verdict_word

PLAIN_ALPHA = 0.0
MUELLER_LS_TEMPERATURE = 1.0
SELECTION_METRIC = "val_acc"
PRIMARY_METRIC = "test_acc"
TEACHER_METRICS = ("test_acc", "test_ece", "test_ece_ts", "test_ts_temperature")


# ---------------------------------------------------------------- JSON pieces


def _json_float(value: float) -> float | None:
    """JSON has no NaN: an unknown number is null."""
    return None if math.isnan(value) else value


def interval_json(interval: Interval) -> dict[str, Any]:
    """Interval as a JSON object with nulls for unknown bounds."""
    return {
        "mean": _json_float(interval.mean),
        "low": _json_float(interval.low),
        "high": _json_float(interval.high),
        "n": interval.n,
    }


def _compare(values: Cell, reference: Cell, metric: str) -> dict[str, Any]:
    """Paired difference values - reference on ``metric`` over the seeds both cells have."""
    def has(cell: Cell, seed: int) -> bool:
        """Whether the seed finished in this cell and reported the metric."""
        return seed in cell and cell[seed].get(metric) is not None

    seeds = sorted(seed for seed in values if has(values, seed) and has(reference, seed))
    per_seed = [
        {
            "seed": seed,
            "value": values[seed][metric],
            "reference": reference[seed][metric],
            "diff": values[seed][metric] - reference[seed][metric],
        }
        for seed in seeds
    ]
    interval = mean_interval([entry["diff"] for entry in per_seed])
    return {
        "metric": metric,
        "per_seed": per_seed,
        **interval_json(interval),
        "verdict": verdict_word(interval),
        "unpaired_seeds": sorted((values.keys() | reference.keys()) - set(seeds)),
        "missing": None if per_seed else f"no seed with {metric} in both cells",
    }


# ---------------------------------------------------------------- sections


def _paired(students: dict[tuple[float, float], Cell]) -> list[dict[str, Any]]:
    """For every T and LS alpha: LS-teacher students minus plain-teacher students."""
    entries = []
    for alpha, temperature in sorted(students, key=lambda key: (key[1], key[0])):
        if alpha > PLAIN_ALPHA:
            plain = _student_cell_or_reason(students, PLAIN_ALPHA, temperature)
            comparison = _checked_compare((students[(alpha, temperature)], None), plain)
            entries.append({"temperature": temperature, "alpha": alpha, **comparison})
    return entries


def _plain_selection(students: dict[tuple[float, float], Cell]) -> tuple[float | None, list[dict[str, Any]]]:
    """Plain teacher's best T by mean validation accuracy, and the table it was chosen from."""
    table = []
    for (alpha, temperature), cell in sorted(students.items()):
        if alpha == PLAIN_ALPHA:
            selection = interval_json(metric_interval(cell, SELECTION_METRIC))
            table.append({"temperature": temperature, SELECTION_METRIC: selection})
    candidates = [entry for entry in table if entry[SELECTION_METRIC]["mean"] is not None]
    if not candidates:
        return None, table
    # On a tie the lower T wins, so the choice does not depend on row order.
    best = max(candidates, key=lambda entry: (entry[SELECTION_METRIC]["mean"], -entry["temperature"]))
    return best["temperature"], table


def _ls_alphas(students: dict[tuple[float, float], Cell], teachers: dict[float, Cell]) -> list[float]:
    """Every LS alpha the study trained a teacher or a student for."""
    return sorted(({alpha for alpha, _ in students} | set(teachers)) - {PLAIN_ALPHA})


def _missing_comparison(reason: str) -> dict[str, Any]:
    """A comparison that could not be made, with the same keys as a real one."""
    nothing = mean_interval([])
    return {
        "metric": PRIMARY_METRIC,
        "per_seed": [],
        **interval_json(nothing),
        "verdict": verdict_word(nothing),
        "unpaired_seeds": [],
        "missing": reason,
    }


def _student_cell_or_reason(
    students: dict[tuple[float, float], Cell], alpha: float, temperature: float | None
) -> tuple[Cell | None, str | None]:
    """A student cell, or why it is not there."""
    if temperature is None:
        return None, "no plain-teacher students with val_acc to choose T from"
    cell = students.get((alpha, temperature))
    if cell is None:
        teacher = "plain-teacher" if alpha == PLAIN_ALPHA else f"alpha={alpha:g} teacher"
        return None, f"no {teacher} students at T={temperature:g}"
    return cell, None


def _checked_compare(
    values: tuple[Cell | None, str | None], reference: tuple[Cell | None, str | None]
) -> dict[str, Any]:
    """Comparison of two cells, or a marked missing comparison when either is absent."""
    reason = values[1] or reference[1]
    if reason is not None:
        return _missing_comparison(reason)
    return _compare(values[0], reference[0], PRIMARY_METRIC)


def _mueller(
    students: dict[tuple[float, float], Cell], teachers: dict[float, Cell], baselines: dict[float, Cell]
) -> dict[str, Any]:
    """Müller's protocol: LS teacher's student at T=1 vs the plain teacher's student at its
    best T (chosen on validation accuracy), and both against students trained alone with LS."""
    best_temperature, selection = _plain_selection(students)
    plain = _student_cell_or_reason(students, PLAIN_ALPHA, best_temperature)
    subjects = [(PLAIN_ALPHA, best_temperature, plain)]
    ls_vs_plain = []
    for alpha in _ls_alphas(students, teachers):
        ls = _student_cell_or_reason(students, alpha, MUELLER_LS_TEMPERATURE)
        subjects.append((alpha, MUELLER_LS_TEMPERATURE, ls))
        ls_vs_plain.append({"alpha": alpha, "ls_temperature": MUELLER_LS_TEMPERATURE,
                            "plain_temperature": best_temperature, **_checked_compare(ls, plain)})
    vs_baseline = [
        {"teacher_alpha": alpha, "temperature": temperature, "baseline_alpha": baseline_alpha,
         **_checked_compare(subject, (cell, None))}
        for baseline_alpha, cell in sorted(baselines.items()) if baseline_alpha > PLAIN_ALPHA
        for alpha, temperature, subject in subjects
    ]
    has_ls_baseline = any(alpha > PLAIN_ALPHA for alpha in baselines)
    notes = [] if has_ls_baseline else ["no baseline student trained alone with LS"]
    return {
        "selection_metric": SELECTION_METRIC,
        "plain_selection": selection,
        "best_temperature": best_temperature,
        "ls_temperature": MUELLER_LS_TEMPERATURE,
        "ls_vs_plain": ls_vs_plain,
        "vs_ls_baseline": vs_baseline,
        "notes": notes,
    }


def _teachers(teachers: dict[float, Cell]) -> list[dict[str, Any]]:
    """Per teacher alpha: accuracy and calibration, so a better student can be traced to a
    better teacher."""
    return [
        {"alpha": alpha, "n": len(cell),
         **{metric: interval_json(metric_interval(cell, metric)) for metric in TEACHER_METRICS}}
        for alpha, cell in sorted(teachers.items())
    ]


def _cells(students: dict[tuple[float, float], Cell], baselines: dict[float, Cell]) -> dict[str, Any]:
    """Mean and interval of test accuracy for every student cell and baseline alpha."""
    return {
        "students": [
            {"alpha": alpha, "temperature": temperature,
             PRIMARY_METRIC: interval_json(metric_interval(cell, PRIMARY_METRIC))}
            for (alpha, temperature), cell in sorted(students.items())
        ],
        "baselines": [
            {"alpha": alpha, PRIMARY_METRIC: interval_json(metric_interval(cell, PRIMARY_METRIC))}
            for alpha, cell in sorted(baselines.items())
        ],
    }


# ---------------------------------------------------------------- words


def _pp(fraction: float | None, signed: bool = False) -> str:
    """A fraction as percentage points with two decimals; 'n/a' when unknown."""
    if fraction is None:
        return "n/a"
    return f"{100 * fraction:+.2f}" if signed else f"{100 * fraction:.2f}"


def _ci(entry: Mapping[str, Any]) -> str:
    """'[low, high]' in percentage points, or 'n/a' when the interval has no width estimate."""
    if entry["low"] is None or entry["high"] is None:
        return "n/a"
    return f"[{_pp(entry['low'])}, {_pp(entry['high'])}]"


def _sentence(subject: str, verb: str, reference: str, entry: Mapping[str, Any]) -> str:
    """One line stating a paired difference no more strongly than its interval allows."""
    if entry.get("missing"):
        return f"{subject} vs {reference}: missing ({entry['missing']})"
    bounds = "n/a" if entry["low"] is None else f"{_pp(entry['low'])}, {_pp(entry['high'])}"
    stats = f"pp [95% CI {bounds}], n={entry['n']}"
    if entry["verdict"] == WORSE:
        return f"{subject} {verb} worse than {reference} by {_pp(abs(entry['mean']))} {stats}"
    if entry["verdict"] == BETTER:
        return f"{subject} {verb} better than {reference} by {_pp(abs(entry['mean']))} {stats}"
    return f"{subject} {verb} not detectably different from {reference}: {_pp(entry['mean'], signed=True)} {stats}"


def _student_label(alpha: float, temperature: float | None) -> str:
    """Human name of a distilled student."""
    teacher = "plain-teacher" if alpha == PLAIN_ALPHA else f"LS-teacher (alpha={alpha:g})"
    at = "T=?" if temperature is None else f"T={temperature:g}"
    return f"{teacher} student at {at}"


def _summary(verdict: Mapping[str, Any]) -> list[str]:
    """Short one-line statements of every comparison in the verdict."""
    lines = [
        _sentence(f"T={entry['temperature']:g}: LS-teacher (alpha={entry['alpha']:g}) students", "are",
                  "plain-teacher students", entry)
        for entry in verdict["paired"]
    ]
    mueller = verdict["mueller"]
    best = mueller["best_temperature"]
    if best is not None:
        lines.append(f"Müller: plain teacher's best T by mean val_acc is T={best:g}")
    for entry in mueller["ls_vs_plain"]:
        lines.append(_sentence(f"Müller: {_student_label(entry['alpha'], entry['ls_temperature'])}", "is",
                               _student_label(PLAIN_ALPHA, best), entry))
    for entry in mueller["vs_ls_baseline"]:
        lines.append(_sentence(f"Müller: {_student_label(entry['teacher_alpha'], entry['temperature'])}", "is",
                               f"the student alone with LS (alpha={entry['baseline_alpha']:g})", entry))
    lines.extend(f"Müller: {note}" for note in mueller["notes"])
    if verdict["failed"]:
        lines.append(f"{verdict['failed']} failed run(s) left out")
    return lines



# ---------------------------------------------------------------- public entry point


def build_verdict(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The study's verdict from its results rows (dicts, possibly read from CSV).

    Keys: paired, mueller, teachers, cells, failed, summary. All numbers are fractions
    (not percent); unknown numbers are None, so the result serialises to strict JSON.
    """
    rows_done, failed = done_rows(rows)
    students = student_cells(rows_done)
    teachers = alpha_cells(rows_done, "teacher")
    baselines = alpha_cells(rows_done, "baseline")
    verdict: dict[str, Any] = {
        "paired": _paired(students),
        "mueller": _mueller(students, teachers, baselines),
        "teachers": _teachers(teachers),
        "cells": _cells(students, baselines),
        "failed": failed,
    }
    verdict["summary"] = _summary(verdict)
    return verdict
