"""Study figures: the headline paired difference against T with its family-wise band, student accuracy
per cell, teacher accuracy/calibration and feature tightness against alpha, and the mechanism
scatter. Error bars of non-negative metrics are clipped at 0 (cells.metric_interval)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from kd_ls.plots import save_figure
from kd_ls.verdict.cells import (PLAIN_ALPHA, PRIMARY_METRIC, alpha_cells, done_rows, metric_interval, of_loss,
                                 student_cells)
from kd_ls.verdict.stats import Interval

_PERCENT = 100.0
# Words for the tightness panels: what each metric is, and which way is tighter.
TIGHTNESS_LABELS = {
    "test_r2": "class separation R² (higher = tighter)",
    "test_nc1": "NC1 (lower = tighter)",
    "test_variance_ratio": "within / between variance (lower = tighter)",
    "test_cdnv": "CDNV (lower = tighter)",
    "test_silhouette": "silhouette (higher = tighter)",
    "test_stability": "output stability (higher = more stable)",
}


def _error_bars(intervals: Sequence[Interval], scale: float) -> list[list[float]]:
    """Asymmetric error-bar lengths; with one seed the spread is unknown and no bar is drawn."""
    below = [0.0 if math.isnan(i.low) else (i.mean - i.low) * scale for i in intervals]
    above = [0.0 if math.isnan(i.high) else (i.high - i.mean) * scale for i in intervals]
    return [below, above]


def _label_alpha(alpha: float) -> str:
    """Legend text for a teacher."""
    return "plain teacher (alpha=0)" if alpha == PLAIN_ALPHA else f"LS teacher (alpha={alpha:g})"


def _baseline_label(alpha: float) -> str:
    """Legend text for a student trained alone."""
    return "student alone, no LS" if alpha == PLAIN_ALPHA else f"student alone, LS alpha={alpha:g}"


def _use_temperature_axis(axes: Axes, temperatures: Sequence[float]) -> None:
    """Temperatures are usually powers of two spanning a wide range, so a log2 axis spaces them
    evenly; the ticks show the temperatures actually run."""
    if min(temperatures) > 0 and max(temperatures) / min(temperatures) >= 4:
        axes.set_xscale("log", base=2)
    axes.set_xticks(list(temperatures))
    axes.set_xticklabels([f"{t:g}" for t in temperatures])
    axes.minorticks_off()


def _pp_or_nan(value: float | None) -> float:
    """A JSON fraction in pp, nan when null (matplotlib leaves a gap there)."""
    return math.nan if value is None else value * _PERCENT


def paired_difference_figure(verdict: Mapping[str, Any]) -> Figure | None:
    """The headline: paired difference (LS-teacher student minus plain-teacher student, pp) against T,
    one line per alpha with its family-wise band and per-comparison 95% bars, and the zero line.
    None when the verdict has no paired difference."""
    paired = [e for e in verdict["paired"] if e["mean"] is not None]
    if not paired:
        return None
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    axes = figure.add_subplot()
    axes.axhline(0.0, color="black", linewidth=1)
    for alpha in sorted({e["alpha"] for e in paired}):
        entries = sorted((e for e in paired if e["alpha"] == alpha), key=lambda e: e["temperature"])
        temperatures = [e["temperature"] for e in entries]
        means = [_pp_or_nan(e["mean"]) for e in entries]
        bars = [[m - _pp_or_nan(e["low"]) for m, e in zip(means, entries)],
                [_pp_or_nan(e["high"]) - m for m, e in zip(means, entries)]]
        line = axes.errorbar(temperatures, means, yerr=[[0 if math.isnan(b) else b for b in side] for side in bars],
                             marker="o", capsize=3, label=f"alpha={alpha:g}")
        axes.fill_between(temperatures, [_pp_or_nan(e["family_low"]) for e in entries],
                          [_pp_or_nan(e["family_high"]) for e in entries], color=line.lines[0].get_color(),
                          alpha=0.2, linewidth=0)
    _use_temperature_axis(axes, sorted({e["temperature"] for e in paired}))
    axes.set_xlabel("distillation temperature T")
    axes.set_ylabel("LS-teacher student − plain-teacher student (pp)")
    axes.set_title(f"Paired by seed. Band: family-wise 95% CI (Bonferroni, m={verdict['family']['m']});\n"
                   "bars: per-comparison 95% CI", fontsize="medium")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", title="LS teacher")
    return figure


def plot_paired_difference(verdict: Mapping[str, Any], path: str | os.PathLike[str]) -> Path | None:
    """paired_difference_figure written to ``path``; None, and no file, without paired differences."""
    figure = paired_difference_figure(verdict)
    return None if figure is None else save_figure(figure, path)


def plot_student_accuracy_vs_temperature(
    rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str], loss: str = "kd"
) -> Path | None:
    """Mean student test accuracy vs distillation temperature of the students of ``loss``, one line
    per teacher alpha with its unpaired per-cell 95% band, baselines trained alone as dashed lines.
    None if no students. The bands ignore the pairing by seed: the paired verdict is
    paired_difference_vs_temperature."""
    finished, _ = done_rows(rows)
    cells = student_cells(of_loss(finished, loss))
    if not cells:
        return None
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    axes = figure.add_subplot()
    for alpha in sorted({alpha for alpha, _ in cells}):
        temperatures = sorted(t for a, t in cells if a == alpha)
        intervals = [metric_interval(cells[(alpha, t)], PRIMARY_METRIC) for t in temperatures]
        line, = axes.plot(temperatures, [i.mean * _PERCENT for i in intervals], marker="o", label=_label_alpha(alpha))
        axes.fill_between(temperatures, [i.low * _PERCENT for i in intervals],
                          [i.high * _PERCENT for i in intervals], color=line.get_color(), alpha=0.2, linewidth=0)
    for index, (alpha, cell) in enumerate(sorted(alpha_cells(finished, "baseline").items())):
        mean = metric_interval(cell, PRIMARY_METRIC).mean * _PERCENT
        axes.axhline(mean, linestyle="--", color=f"C{7 + index % 3}", label=_baseline_label(alpha))
    _use_temperature_axis(axes, sorted({t for _, t in cells}))
    axes.set_xlabel("distillation temperature T")
    axes.set_ylabel("student test accuracy (%)")
    axes.set_title("Students by teacher alpha. Bands: UNPAIRED 95% CI per cell;\n"
                   "the paired, family-wise verdict is in paired_difference_vs_temperature.png", fontsize="medium")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return save_figure(figure, path)


def _teacher_axes(axes: Axes, cells: Mapping[float, Any], metric: str, label: str, scale: float) -> bool:
    """Error-bar plot of one teacher metric vs alpha; False when no teacher reports it."""
    alphas = [alpha for alpha in sorted(cells) if metric_interval(cells[alpha], metric).n > 0]
    if not alphas:
        return False
    intervals = [metric_interval(cells[alpha], metric) for alpha in alphas]
    axes.errorbar(alphas, [i.mean * scale for i in intervals], yerr=_error_bars(intervals, scale),
                  marker="o", capsize=4, label=label)
    return True


def _alpha_axis(axes: Axes, alphas: Sequence[float]) -> None:
    """x axis of a teacher-vs-alpha panel."""
    axes.set_xlabel("teacher label smoothing alpha")
    axes.set_xticks(list(alphas))
    axes.grid(alpha=0.3)


def plot_teacher_vs_alpha(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path | None:
    """Teacher test accuracy (left) and ECE before/after temperature scaling (right) vs alpha,
    with 95% error bars clipped at 0. None if there are no finished teachers."""
    finished, _ = done_rows(rows)
    cells = alpha_cells(finished, "teacher")
    if not cells:
        return None
    figure = Figure(figsize=(10, 4), layout="constrained")
    accuracy, calibration = figure.subplots(1, 2)
    _teacher_axes(accuracy, cells, "test_acc", "test accuracy", _PERCENT)
    accuracy.set_ylabel("teacher test accuracy (%)")
    drawn = [_teacher_axes(calibration, cells, metric, label, _PERCENT)
             for metric, label in (("test_ece", "ECE"), ("test_ece_ts", "ECE after temperature scaling"))]
    calibration.set_ylabel("teacher test ECE (%)")
    if any(drawn):
        calibration.legend(fontsize="small")
    for axes in (accuracy, calibration):
        _alpha_axis(axes, sorted(cells))
    figure.suptitle("Teachers vs alpha (error bars: 95% CI over seeds, clipped at 0: ECE cannot be negative)")
    return save_figure(figure, path)


def plot_tightness_vs_alpha(
    rows: Iterable[Mapping[str, Any]],
    path: str | os.PathLike[str],
    metrics: Sequence[str] = ("test_r2", "test_nc1"),
) -> Path | None:
    """Teachers' class-cluster tightness metrics vs alpha, one panel per metric that some teacher
    reports, labelled in words, with 95% error bars. None, and no file, when no teacher reports any."""
    finished, _ = done_rows(rows)
    cells = alpha_cells(finished, "teacher")
    present = [m for m in metrics if any(metric_interval(cell, m).n > 0 for cell in cells.values())]
    if not present:
        return None
    cols = min(3, len(present))
    lines = -(-len(present) // cols)
    figure = Figure(figsize=(4.5 * cols, 3.6 * lines), layout="constrained")
    grid = figure.subplots(lines, cols, squeeze=False).flatten()
    for unused in grid[len(present):]:
        unused.set_visible(False)
    for axes, metric in zip(grid, present):
        label = TIGHTNESS_LABELS.get(metric, metric)
        _teacher_axes(axes, cells, metric, label, 1.0)
        axes.set_title(label, fontsize="medium")
        axes.set_ylabel(label.split(" (")[0])
        _alpha_axis(axes, sorted(cells))
    figure.suptitle("Teacher feature tightness vs alpha (error bars: 95% CI over seeds)")
    return save_figure(figure, path)


def plot_mechanism(verdict: Mapping[str, Any], path: str | os.PathLike[str]) -> Path | None:
    """One panel per teacher measure: each LS teacher's value against its students' gain over the
    plain teacher's students (same seed and T, pp), coloured by T, with r per T in the title.
    None when no measure has a point."""
    mechanism = verdict["mechanism"]
    measures = [c for c in mechanism["conclusions"] if any(p["measure"] == c["measure"] for p in mechanism["points"])]
    if not measures:
        return None
    temperatures = sorted({p["temperature"] for p in mechanism["points"]})
    cols = min(3, len(measures))
    lines = -(-len(measures) // cols)
    figure = Figure(figsize=(4.8 * cols, 4.2 * lines), layout="constrained")
    grid = figure.subplots(lines, cols, squeeze=False).flatten()
    for unused in grid[len(measures):]:
        unused.set_visible(False)
    for axes, measure in zip(grid, measures):
        axes.axhline(0.0, color="black", linewidth=1)
        for index, t in enumerate(temperatures):
            points = [p for p in mechanism["points"] if p["measure"] == measure["measure"] and p["temperature"] == t]
            axes.scatter([p["x"] for p in points], [p["gain"] * _PERCENT for p in points], color=f"C{index}",
                         label=f"T={t:g}")
        rows = [r for r in mechanism["rows"] if r["measure"] == measure["measure"] and r["r"] is not None]
        # two per line: four on one line run into the neighbouring panel's title
        parts = [f"T={r['temperature']:g}: r={r['r']:+.2f} (n={r['n']})" for r in rows]
        r_text = "\n".join(", ".join(parts[i:i + 2]) for i in range(0, len(parts), 2)) or "r: n/a"
        axes.set_title(f"{measure['label']}\n{r_text}", fontsize="small")
        axes.set_xlabel(measure["label"])
        axes.set_ylabel("student gain over plain-teacher student (pp)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle("Teacher measures vs their students' gain (LS teachers, each seed)")
    return save_figure(figure, path)
