"""The study report's figures, drawn from its rows, its verdict and its teachers' analyses.

Imported by report.write_report only when it draws, so training never loads matplotlib.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from kd_ls.layout import AnalysisLayout, StudyLayout
from kd_ls.plots.forest import plot_forest
from kd_ls.plots.projection import ProjectionPanel, plot_teacher_projections
from kd_ls.plots.study import (
    plot_mechanism,
    plot_paired_difference,
    plot_student_accuracy_vs_temperature,
    plot_teacher_vs_alpha,
    plot_tightness_vs_alpha,
)


def projection_panels(rows: Sequence[Mapping[str, Any]],
                      analyses: Mapping[tuple[float, int], Path]) -> list[ProjectionPanel]:
    """One panel per analysed teacher with a saved projection, with its row's tightness numbers."""
    teachers = {(r["alpha"], r["seed"]): r for r in rows if r["role"] == "teacher"}
    panels = []
    for (alpha, seed), folder in sorted(analyses.items()):
        saved_file = AnalysisLayout(folder).projection_points
        if not saved_file.is_file():
            continue
        saved = torch.load(saved_file, map_location="cpu")
        row = teachers[(alpha, seed)]
        panels.append(ProjectionPanel(alpha, seed, str(row["run_id"]), saved["points"], saved["labels"],
                                      saved["templates"], saved["class_names"], _number(row.get("test_r2")),
                                      _number(row.get("test_nc1"))))
    return panels


def _number(value: Any) -> float | None:
    """A results value as a float, None when absent."""
    return None if value is None or value == "" else float(value)


def draw_figures(layout: StudyLayout, rows: list[dict[str, Any]], verdict: Mapping[str, Any],
                 analyses: Mapping[tuple[float, int], Path], tightness: Sequence[str]) -> None:
    """Every figure of plots/: the forest plot of every comparison, the paired difference, student accuracy per cell, teachers,
    tightness, the mechanism scatter and all teachers' projections side by side."""
    plot_forest(verdict, layout.forest_plot)
    plot_paired_difference(verdict, layout.plot("paired_difference_vs_temperature"))
    plot_student_accuracy_vs_temperature(rows, layout.plot("student_accuracy_vs_temperature"),
                                         loss=verdict["primary"]["grid"]["loss"])
    plot_teacher_vs_alpha(rows, layout.plot("teacher_vs_alpha"))
    plot_tightness_vs_alpha(rows, layout.plot("tightness_vs_alpha"), metrics=tightness)
    plot_mechanism(verdict, layout.plot("mechanism"))
    plot_teacher_projections(projection_panels(rows, analyses), layout.plot("teacher_projections"))
