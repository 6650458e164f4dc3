"""Müller et al.'s projection of penultimate features onto the plane of three class templates."""

from __future__ import annotations

import os
from typing import Sequence

import torch
from matplotlib.figure import Figure
from torch import Tensor

from kd_ls.plots import save_figure


def plot_muller_projection(
    points: Tensor,
    labels: Tensor,
    class_names: Sequence[str] | dict[int, str] | None = None,
    path: str | os.PathLike[str] | None = None,
    title: str = "Penultimate-layer projection",
) -> Figure:
    """Scatter the projected points coloured by class; PNG written when `path` is given.

    `class_names` maps each distinct label (in sorted order, or by value for a dict) to a legend
    entry. Built without pyplot, so no global figure state is left behind.
    """
    pts = points.detach().to(torch.float64).cpu()
    lab = labels.detach().cpu()
    figure = Figure(figsize=(5, 5))
    axes = figure.add_subplot(1, 1, 1)
    for position, value in enumerate(torch.unique(lab, sorted=True).tolist()):
        mask = lab == value
        if isinstance(class_names, dict):
            name = class_names.get(value, str(value))
        elif class_names is not None:
            name = class_names[position]
        else:
            name = str(value)
        axes.scatter(pts[mask, 0].tolist(), pts[mask, 1].tolist(), s=8, alpha=0.7, label=name)
    axes.set_aspect("equal", adjustable="datalim")
    axes.set_title(title)
    axes.legend(loc="best", markerscale=2)
    if path is not None:
        save_figure(figure, path)
    return figure
