"""Study figures: student accuracy vs temperature, teacher accuracy/calibration and
feature tightness vs label-smoothing alpha. Bands and error bars are 95% intervals over seeds."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from kd_ls.plots import save_figure
from kd_ls.study.stats import Interval
from kd_ls.study.verdict import (
    PLAIN_ALPHA,
    PRIMARY_METRIC,
    alpha_cells,
    done_rows,
    metric_interval,
    student_cells,
)

_PERCENT = 100.0


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


def plot_student_accuracy_vs_temperature(
    rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]
) -> Path | None:
    """Mean student test accuracy vs distillation temperature, one line per teacher alpha with a
    shaded 95% band, baselines trained alone as dashed horizontal lines. None if no students."""
    finished, _ = done_rows(rows)
    cells = student_cells(finished)
    if not cells:
        return None
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    axes = figure.add_subplot()
    for alpha in sorted({alpha for alpha, _ in cells}):
        temperatures = sorted(t for a, t in cells if a == alpha)
        intervals = [metric_interval(cells[(alpha, t)], PRIMARY_METRIC) for t in temperatures]
        line, = axes.plot(temperatures, [i.mean * _PERCENT for i in intervals],
                          marker="o", label=_label_alpha(alpha))
        axes.fill_between(temperatures, [i.low * _PERCENT for i in intervals],
                          [i.high * _PERCENT for i in intervals], color=line.get_color(), alpha=0.2, linewidth=0)
    for index, (alpha, cell) in enumerate(sorted(alpha_cells(finished, "baseline").items())):
        mean = metric_interval(cell, PRIMARY_METRIC).mean * _PERCENT
        axes.axhline(mean, linestyle="--", color=f"C{7 + index % 3}", label=_baseline_label(alpha))
    _use_temperature_axis(axes, sorted({t for _, t in cells}))
    axes.set_xlabel("distillation temperature T")
    axes.set_ylabel("student test accuracy (%)")
    axes.set_title("Students by teacher alpha (band: 95% CI over seeds)")
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


def plot_teacher_vs_alpha(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path | None:
    """Teacher test accuracy (left) and ECE before/after temperature scaling (right) vs alpha,
    with 95% error bars. None if there are no finished teachers."""
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
        axes.set_xlabel("teacher label smoothing alpha")
        axes.set_xticks(sorted(cells))
        axes.grid(alpha=0.3)
    figure.suptitle("Teachers vs alpha (error bars: 95% CI over seeds)")
    return save_figure(figure, path)


def plot_tightness_vs_alpha(
    rows: Iterable[Mapping[str, Any]],
    path: str | os.PathLike[str],
    metrics: Sequence[str] = ("test_r2", "test_nc1"),
) -> Path | None:
    """Teachers' class-cluster tightness metrics vs alpha, one panel per metric that some teacher
    reports, with 95% error bars. None, and no file, when no teacher reports any of them."""
    finished, _ = done_rows(rows)
    cells = alpha_cells(finished, "teacher")
    present = [m for m in metrics if any(metric_interval(cell, m).n > 0 for cell in cells.values())]
    if not present:
        return None
    cols = min(3, len(present))
    rows = -(-len(present) // cols)
    figure = Figure(figsize=(4.5 * cols, 3.6 * rows), layout="constrained")
    grid = figure.subplots(rows, cols, squeeze=False).flatten()
    for unused in grid[len(present):]:
        unused.set_visible(False)
    for axes, metric in zip(grid, present):
        _teacher_axes(axes, cells, metric, metric, 1.0)
        axes.set_xlabel("teacher label smoothing alpha")
        axes.set_ylabel(metric)
        axes.set_xticks(sorted(cells))
        axes.grid(alpha=0.3)
    figure.suptitle("Teacher feature tightness vs alpha (error bars: 95% CI over seeds)")
    return save_figure(figure, path)
