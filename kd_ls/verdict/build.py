"""The study's verdict as JSON-ready data: the declared primary question and its precondition (each
one test, possibly over planned looks), the secondary family (per-T, Müller-protocol,
accuracy-matched and per-loss comparisons, decided together by Holm), the exploratory mechanism
table, teacher, cell and gap tables, and the sentences that state them (sentences.py; report/render.py
turns it all into markdown).

Conventions (science.md §6): students of the same seed are paired across teachers; every mean comes
with a 95% Student-t interval over seeds; accuracies are last-epoch test accuracies; the only choice
made from data (the plain teacher's temperature in Müller's protocol and the val-chosen
precondition) uses validation accuracy, never test accuracy. Numbers are fractions except the
primary's and the precondition's, which carry `_pp` in their names; unknown numbers are null.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from kd_ls.verdict.cells import (PLAIN_ALPHA, PRIMARY_METRIC, Cell, alpha_cells, done_rows, loss_of, metric_interval,
                                 of_loss, student_cells)
from kd_ls.verdict import sequential
from kd_ls.verdict.family import MDE_METHOD, POWER, RESOLUTION, decide_family
from kd_ls.verdict.matched import accuracy_matched
from kd_ls.verdict.mechanism import mechanism
from kd_ls.verdict.primary import (BETTER, HELPS, HURTS, WORSE, Grid, decision, precondition_contrasts,
                                   primary_contrasts)
from kd_ls.verdict.sentences import headline, summary
from kd_ls.verdict.stats import Estimate, Interval, mean_estimate, mean_interval

MUELLER_LS_TEMPERATURE = 1.0
SELECTION_METRIC = "val_acc"
TEACHER_METRICS = ("test_acc", "test_ece", "test_ece_ts", "test_ts_temperature", "test_r2", "test_nc1",
                   "mutual_information")

Comparison = tuple[dict[str, Any], Estimate]
StudentCells = dict[tuple[float, float], Cell]


def _json_float(value: float) -> float | None:
    """JSON has no NaN: an unknown number is null."""
    return None if math.isnan(value) else value


def interval_json(interval: Interval) -> dict[str, Any]:
    """Interval as a JSON object with nulls for unknown bounds."""
    return {"mean": _json_float(interval.mean), "low": _json_float(interval.low),
            "high": _json_float(interval.high), "n": interval.n}


def _per_seed(cell: Cell, metric: str) -> list[dict[str, Any]]:
    """The per-seed values of a cell (for the appendix of verdict.md)."""
    return [{"seed": seed, "value": row[metric]} for seed, row in sorted(cell.items()) if row.get(metric) is not None]


# ---------------------------------------------------------------- comparisons


def _compare(values: Cell, reference: Cell, metric: str = PRIMARY_METRIC) -> Comparison:
    """Paired difference values - reference on ``metric`` over the seeds both cells have."""
    seeds = sorted(s for s in values.keys() & reference.keys()
                   if values[s].get(metric) is not None and reference[s].get(metric) is not None)
    per_seed = [{"seed": s, "value": values[s][metric], "reference": reference[s][metric],
                 "diff": values[s][metric] - reference[s][metric]} for s in seeds]
    estimate = mean_estimate([entry["diff"] for entry in per_seed])
    entry = {"metric": metric, "per_seed": per_seed, "mean": _json_float(estimate.value), "n": len(per_seed),
             "unpaired_seeds": sorted((values.keys() | reference.keys()) - set(seeds)),
             "missing": None if per_seed else f"no seed with {metric} in both cells"}
    return entry, estimate


def _missing(reason: str) -> Comparison:
    """A comparison that could not be made, with the same keys as a real one."""
    entry = {"metric": PRIMARY_METRIC, "per_seed": [], "mean": None, "n": 0, "unpaired_seeds": [], "missing": reason}
    return entry, mean_estimate([])


def _student_cell(students: StudentCells, alpha: float, temperature: float | None) -> tuple[Cell | None, str | None]:
    """A student cell, or why it is not there."""
    if temperature is None:
        return None, "no plain-teacher students with val_acc to choose T from"
    cell = students.get((alpha, temperature))
    if cell is None:
        teacher = "plain-teacher" if alpha == PLAIN_ALPHA else f"alpha={alpha:g} teacher"
        return None, f"no {teacher} students at T={temperature:g}"
    return cell, None


def _checked_compare(values: tuple[Cell | None, str | None], reference: tuple[Cell | None, str | None]) -> Comparison:
    """Comparison of two cells, or a marked missing comparison when either is absent."""
    reason = values[1] or reference[1]
    return _missing(reason) if reason is not None else _compare(values[0], reference[0])


def _paired(students: StudentCells) -> list[Comparison]:
    """For every T and LS alpha: LS-teacher students minus plain-teacher students."""
    pairs = []
    for alpha, temperature in sorted(students, key=lambda key: (key[1], key[0])):
        if alpha > PLAIN_ALPHA:
            entry, estimate = _checked_compare((students[(alpha, temperature)], None),
                                               _student_cell(students, PLAIN_ALPHA, temperature))
            pairs.append(({"temperature": temperature, "alpha": alpha, **entry}, estimate))
    return pairs


def _plain_selection(students: StudentCells) -> tuple[float | None, list[dict[str, Any]]]:
    """Plain teacher's best T by mean validation accuracy, and the table it was chosen from."""
    table = [{"temperature": t, SELECTION_METRIC: interval_json(metric_interval(cell, SELECTION_METRIC))}
             for (alpha, t), cell in sorted(students.items()) if alpha == PLAIN_ALPHA]
    candidates = [entry for entry in table if entry[SELECTION_METRIC]["mean"] is not None]
    if not candidates:
        return None, table
    # On a tie the lower T wins, so the choice does not depend on row order.
    best = max(candidates, key=lambda entry: (entry[SELECTION_METRIC]["mean"], -entry["temperature"]))
    return best["temperature"], table


def _mueller(students: StudentCells, teachers: dict[float, Cell],
             baselines: dict[float, Cell]) -> tuple[dict[str, Any], list[Comparison]]:
    """Müller's protocol: LS teacher's student at T=1 vs the plain teacher's student at its best T
    (chosen on validation accuracy), and both against students trained alone with LS."""
    best, selection = _plain_selection(students)
    plain = _student_cell(students, PLAIN_ALPHA, best)
    subjects = [(PLAIN_ALPHA, best, plain)]
    ls_vs_plain = []
    for alpha in sorted(({a for a, _ in students} | set(teachers)) - {PLAIN_ALPHA}):
        ls = _student_cell(students, alpha, MUELLER_LS_TEMPERATURE)
        subjects.append((alpha, MUELLER_LS_TEMPERATURE, ls))
        entry, estimate = _checked_compare(ls, plain)
        ls_vs_plain.append(({"alpha": alpha, "ls_temperature": MUELLER_LS_TEMPERATURE, "plain_temperature": best,
                             **entry}, estimate))
    vs_baseline = []
    for baseline_alpha, cell in sorted(baselines.items()):
        for alpha, temperature, subject in subjects if baseline_alpha > PLAIN_ALPHA else ():
            entry, estimate = _checked_compare(subject, (cell, None))
            vs_baseline.append(({"teacher_alpha": alpha, "temperature": temperature,
                                 "baseline_alpha": baseline_alpha, **entry}, estimate))
    notes = [] if any(a > PLAIN_ALPHA for a in baselines) else ["no baseline student trained alone with LS"]
    section = {"selection_metric": SELECTION_METRIC, "plain_selection": selection, "best_temperature": best,
               "ls_temperature": MUELLER_LS_TEMPERATURE, "ls_vs_plain": [e for e, _ in ls_vs_plain],
               "vs_ls_baseline": [e for e, _ in vs_baseline], "notes": notes}
    return section, ls_vs_plain + vs_baseline


# ---------------------------------------------------------------- tables


def _teachers(teachers: dict[float, Cell]) -> list[dict[str, Any]]:
    """Per teacher alpha: accuracy, calibration and tightness, so a better student can be traced to
    a better teacher; intervals of these non-negative metrics are clipped at 0 (cells.py)."""
    return [{"alpha": alpha, "n": len(cell),
             **{metric: {**interval_json(metric_interval(cell, metric)), "per_seed": _per_seed(cell, metric)}
                for metric in TEACHER_METRICS}}
            for alpha, cell in sorted(teachers.items())]


def _cells(students: StudentCells, baselines: dict[float, Cell]) -> dict[str, Any]:
    """Mean, interval and per-seed values of test accuracy for every student cell and baseline alpha."""
    def table(cell: Cell) -> dict[str, Any]:
        """One cell's test-accuracy interval and per-seed values."""
        return {**interval_json(metric_interval(cell, PRIMARY_METRIC)), "per_seed": _per_seed(cell, PRIMARY_METRIC)}

    return {"students": [{"alpha": a, "temperature": t, PRIMARY_METRIC: table(cell)}
                         for (a, t), cell in sorted(students.items())],
            "baselines": [{"alpha": a, PRIMARY_METRIC: table(cell)} for a, cell in sorted(baselines.items())]}


def _gap(students: StudentCells, teachers: dict[float, Cell]) -> list[dict[str, Any]]:
    """Teacher minus its own student (same alpha and seed) in test accuracy, per cell."""
    gaps = []
    for (alpha, temperature), cell in sorted(students.items()):
        entry, _ = _compare(teachers.get(alpha, {}), cell)
        gaps.append({"alpha": alpha, "temperature": temperature,
                     **interval_json(mean_interval([p["diff"] for p in entry["per_seed"]]))})
    return gaps


def _test_n(rows: list[Mapping[str, Any]]) -> int | list[int] | None:
    """The test-set size the rows report (``test_n``): one number, or the distinct values if runs disagree."""
    sizes = sorted({int(row["test_n"]) for row in rows if row.get("test_n") is not None})
    return None if not sizes else sizes[0] if len(sizes) == 1 else sizes


def _loss_contrasts(rows: list[dict[str, Any]], losses: list[str], grid: Grid) -> list[Comparison]:
    """Per loss, the primary's contrast under that loss; per further loss, its difference from the
    first loss's contrast (the loss x LS interaction), paired by seed."""
    per_loss = {}
    for loss in losses:
        cells = student_cells(of_loss(rows, loss))
        per_loss[loss], _ = primary_contrasts(cells, Grid(grid.alphas, grid.temperatures, loss))
    comparisons = []
    for loss in losses:
        estimate = mean_estimate([per_loss[loss][s] for s in sorted(per_loss[loss])])
        comparisons.append(({"kind": "loss", "loss": loss, "mean": _json_float(estimate.value),
                             "n": len(per_loss[loss]), "missing": None if per_loss[loss] else f"no complete seed for {loss}"},
                            estimate))
    first = losses[0]
    for loss in losses[1:]:
        seeds = sorted(per_loss[loss].keys() & per_loss[first].keys())
        estimate = mean_estimate([per_loss[loss][s] - per_loss[first][s] for s in seeds])
        comparisons.append(({"kind": "interaction", "loss": loss, "reference_loss": first,
                             "mean": _json_float(estimate.value), "n": len(seeds),
                             "missing": None if seeds else f"no seed with both {loss} and {first}"}, estimate))
    return comparisons


def _losses(rows: list[dict[str, Any]], design: Mapping[str, Any]) -> list[str]:
    """The losses the students were distilled with, the primary's first."""
    found = sorted({loss_of(r) for r in rows if r["role"] == "student"} - {design["grid"]["loss"]})
    return [design["grid"]["loss"], *found]


def design_from_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The default design for rows without a study (tests, `kd-ls compare`): every LS alpha and
    temperature of the students, the first loss, one look at the seeds that have every cell."""
    students = [r for r in rows if r["role"] == "student"]
    seeds = sorted({r["seed"] for r in rows})
    study = {"alphas": sorted({PLAIN_ALPHA, *(r["teacher_alpha"] for r in students)}),
             "temperatures": sorted({r["temperature"] for r in students}), "seeds": seeds,
             "losses": sorted({loss_of(r) for r in students}) or ["kd"]}
    design = sequential.design_of(study)
    cells = student_cells(of_loss(rows, design["grid"]["loss"]))
    complete, _ = primary_contrasts(cells, _grid(design))
    return {**design, "schedule": [max(len(complete), 1)]}


def _grid(design: Mapping[str, Any]) -> Grid:
    grid = design["grid"]
    return Grid(tuple(grid["alphas"]), tuple(grid["temperatures"]), grid["loss"])


def _primary(students: StudentCells, baselines: dict[float, Cell], history: dict[str, Any],
             when: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The primary and the precondition at the look the design has reached, and the history with
    that look recorded."""
    declaration = history["declarations"][-1]
    design = declaration["design"]
    margin = design["margin_pp"] / 100
    contrasts, incomplete = primary_contrasts(students, _grid(design))
    mode = design["precondition"]["mode"]
    chosen, _ = _plain_selection(students) if mode == "val_chosen" else (None, None)
    temperatures = design["precondition"]["temperatures"] if mode == "pooled" else [t for t in [chosen] if t is not None]
    pre_contrasts, pre_incomplete = precondition_contrasts(students, baselines.get(PLAIN_ALPHA), temperatures)
    look = sequential.next_look(history, sorted(contrasts))
    alpha = look["alpha"] if look else declaration["alpha_budget"]
    seeds = look["seeds"] if look else sorted(contrasts)
    primary = decision(design["question"], {s: contrasts[s] for s in seeds}, incomplete, alpha, margin, BETTER, WORSE)
    precondition = decision(
        "plain-teacher students minus the student trained alone (test accuracy), paired by seed, "
        + ("averaged over T" if mode == "pooled" else f"at the plain teacher's val-chosen T={chosen:g}"
           if chosen is not None else "at the plain teacher's val-chosen T (none: no val_acc)"),
        {s: pre_contrasts[s] for s in seeds if s in pre_contrasts}, pre_incomplete, alpha, margin, HELPS, HURTS)
    precondition.update({"mode": mode, "temperatures": temperatures})
    if PLAIN_ALPHA not in baselines:
        precondition["why"] = "no student trained alone (baselines.alone: false), so it cannot be tested"
    if look is None:
        for entry in (primary, precondition):
            entry["word"] = "undecided"
        primary["why"] = ("the study has no LS teacher (no alpha > 0), so there is nothing to compare"
                          if not design["grid"]["alphas"] else
                          f"not yet at its first planned look ({len(contrasts)} of {design['schedule'][0]} seeds "
                          "complete); the numbers are exploratory")
    else:
        history = sequential.record_look(history, look, primary, when)
        stopped = sequential.first_decided(history, declaration["index"])
        if stopped is not None and stopped["look"] < look["look"]:
            primary["why"] = (f"decided at look {stopped['look']} ({stopped['word']}); later seeds are exploratory")
            primary["word"] = stopped["word"]
    for entry in (primary, precondition):
        entry.update({"declared_sha256": declaration["declared_sha256"], "declaration": declaration["index"],
                      "redeclared_after_look": declaration["redeclared_after_look"],
                      "look": None if look is None else look["look"], "looks_planned": len(design["schedule"])})
    primary["grid"] = design["grid"]
    return primary, precondition, history


# ---------------------------------------------------------------- public entry point


def build_verdict(rows: Iterable[Mapping[str, Any]], design: Mapping[str, Any] | None = None,
                  history: Mapping[str, Any] | None = None, sha256: str | None = None,
                  when: str = "") -> dict[str, Any]:
    """The study's verdict from its results rows (dicts, possibly read from CSV).

    ``design`` is the primary's design (sequential.design_of a study; default: design_from_rows),
    ``history`` the study folder's record of declarations and looks (default: none yet), ``sha256``
    the study file's hash and ``when`` the time stamp of a new declaration or look. The updated
    history is returned in ``verdict["design"]``.

    Keys: primary, precondition, design, family, paired, mueller, accuracy_matched, losses,
    mechanism, teachers, cells, gap, test_n, failed, headline, summary. Serialises to strict JSON.
    """
    rows_done, failed = done_rows(rows)
    design = dict(design or design_from_rows(rows_done))
    losses = _losses(rows_done, design)
    students = student_cells(of_loss(rows_done, losses[0]))
    teachers = alpha_cells(rows_done, "teacher")
    baselines = alpha_cells(rows_done, "baseline")
    history = sequential.declare(history, design, sha256, when)
    primary, precondition, history = _primary(students, baselines, history, when)
    paired = _paired(students)
    mueller, mueller_comparisons = _mueller(students, teachers, baselines)
    matched = accuracy_matched(students, teachers)
    by_loss = _loss_contrasts(rows_done, losses, _grid(design)) if len(losses) > 1 else []
    family = decide_family(paired + mueller_comparisons + matched + by_loss)
    verdict: dict[str, Any] = {
        "primary": primary,
        "precondition": precondition,
        "design": {"schedule": history["declarations"][-1]["design"]["schedule"], "spending": sequential.SPENDING,
                   "alpha": sequential.ALPHA, "alpha_spent": sequential.alpha_spent(history), **history},
        "family": {**family.describe(), "resolution": RESOLUTION, "power": POWER, "mde_method": MDE_METHOD,
                   "comparisons": "per-T paired, Müller-protocol, accuracy-matched"
                                  + (" and per-loss" if by_loss else "") + " comparisons with a p-value"},
        "paired": [entry for entry, _ in paired],
        "mueller": mueller,
        "accuracy_matched": [entry for entry, _ in matched],
        "losses": [entry for entry, _ in by_loss],
        "mechanism": mechanism(students, teachers),
        "teachers": _teachers(teachers),
        "cells": _cells(students, baselines),
        "gap": _gap(students, teachers),
        "test_n": _test_n(rows_done),
        "failed": failed,
    }
    verdict["headline"] = headline(verdict)
    verdict["summary"] = summary(verdict)
    return verdict
