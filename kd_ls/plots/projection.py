"""Müller et al.'s projection of penultimate features onto the plane of three class templates."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from kd_ls.plots import save_figure

ClassNames = Sequence[str] | dict[int, str] | None


def _name(class_names: ClassNames, position: int, value: int) -> str:
    """Legend entry of a label: by value for a dict, by sorted position for a sequence."""
    if isinstance(class_names, dict):
        return class_names.get(value, str(value))
    return class_names[position] if class_names is not None else str(value)


def draw_projection(axes: Axes, points: Tensor, labels: Tensor, class_names: ClassNames = None,
                    templates: Tensor | None = None) -> None:
    """Scatter projected points coloured by class on ``axes``; the class templates (3, 2), when
    given, as black crosses, so the clusters' spread can be read against the templates' spacing."""
    pts = points.detach().to(torch.float64).cpu()
    lab = labels.detach().cpu()
    for position, value in enumerate(torch.unique(lab, sorted=True).tolist()):
        mask = lab == value
        axes.scatter(pts[mask, 0].tolist(), pts[mask, 1].tolist(), s=8, alpha=0.7,
                     label=_name(class_names, position, value))
    if templates is not None:
        t = templates.detach().to(torch.float64).cpu()
        axes.scatter(t[:, 0].tolist(), t[:, 1].tolist(), marker="x", s=60, color="black", label="class templates")
    axes.set_aspect("equal", adjustable="datalim")


def plot_muller_projection(
    points: Tensor,
    labels: Tensor,
    class_names: ClassNames = None,
    path: str | os.PathLike[str] | None = None,
    title: str = "Penultimate-layer projection",
    templates: Tensor | None = None,
) -> Figure:
    """Scatter the projected points coloured by class; PNG written when `path` is given.

    `class_names` maps each distinct label (in sorted order, or by value for a dict) to a legend
    entry. Built without pyplot, so no global figure state is left behind.
    """
    figure = Figure(figsize=(5, 5))
    axes = figure.add_subplot(1, 1, 1)
    draw_projection(axes, points, labels, class_names, templates)
    axes.set_title(title, fontsize="medium")
    axes.legend(loc="best", markerscale=2)
    if path is not None:
        save_figure(figure, path)
    return figure


@dataclass(frozen=True)
class ProjectionPanel:
    """One teacher's saved projection (kd_ls.analysis: muller_projection.pt) and its tightness."""

    alpha: float
    seed: int
    run_id: str
    points: Tensor
    labels: Tensor
    templates: Tensor
    class_names: Sequence[str]
    r2: float | None
    nc1: float | None

    def scaled(self) -> tuple[Tensor, Tensor]:
        """Points and templates in units of the mean distance between the three templates."""
        scale = torch.pdist(self.templates.to(torch.float64)).mean()
        return self.points.to(torch.float64) / scale, self.templates.to(torch.float64) / scale


def _tightness_text(panel: ProjectionPanel) -> str:
    """'R² = ..., NC1 = ...' of a panel's teacher (test split), 'n/a' where unknown."""
    r2 = "n/a" if panel.r2 is None else f"{panel.r2:.3f}"
    nc1 = "n/a" if panel.nc1 is None else f"{panel.nc1:.3g}"
    return f"R² = {r2} (higher = tighter), NC1 = {nc1} (lower = tighter)"


def plot_teacher_projections(panels: Sequence[ProjectionPanel], path: str | os.PathLike[str]) -> Path | None:
    """Every teacher's Müller projection in one figure: a column per alpha, a row per seed, each in units
    of its own templates' mean distance and all on one shared range, so the clusters' tightness is
    comparable between teachers. None when there is no panel."""
    if not panels:
        return None
    alphas = sorted({p.alpha for p in panels})
    seeds = sorted({p.seed for p in panels})
    scaled = {(p.alpha, p.seed): (p, *p.scaled()) for p in panels}
    everything = torch.cat([torch.cat([points, templates]) for _, points, templates in scaled.values()])
    low, high = everything.min(0).values, everything.max(0).values
    margin = 0.05 * float((high - low).max())
    figure = Figure(figsize=(4.2 * len(alphas), 4.4 * len(seeds)), layout="constrained")
    grid = figure.subplots(len(seeds), len(alphas), squeeze=False)
    for row, seed in enumerate(seeds):
        for col, alpha in enumerate(alphas):
            axes = grid[row][col]
            if (alpha, seed) not in scaled:
                axes.set_visible(False)
                continue
            panel, points, templates = scaled[(alpha, seed)]
            draw_projection(axes, points, panel.labels, list(panel.class_names), templates)
            axes.set_aspect("equal", adjustable="box")  # the shared limits stay; the panel's box adapts
            axes.set_xlim(float(low[0]) - margin, float(high[0]) + margin)
            axes.set_ylim(float(low[1]) - margin, float(high[1]) + margin)
            axes.set_title(f"alpha={alpha:g}, seed={seed}, run {panel.run_id}\n{_tightness_text(panel)}",
                           fontsize="small")
    grid[0][0].legend(loc="best", fontsize="small", markerscale=1.5)
    figure.suptitle("Müller projections of every analysed teacher (test split); each in units of the mean distance "
                    "between its 3 class templates, on one shared range")
    return save_figure(figure, path)
