"""The reliability diagram: per-bin accuracy against confidence (science.md §4 binning)."""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch
from matplotlib.figure import Figure
from torch import Tensor

from kd_ls.metrics import reliability_diagram
from kd_ls.plots import save_figure


def plot_reliability_diagram(
    data_or_probs: Mapping[str, Any] | Tensor,
    labels: Tensor | None = None,
    path: str | os.PathLike[str] | None = None,
    title: str = "Reliability diagram",
    n_bins: int = 15,
) -> Figure:
    """Bar chart of per-bin accuracy against the diagonal, with the gap to confidence shaded.

    `data_or_probs` is either the dict from `reliability_diagram` or a (N, K) probability tensor
    (then `labels` is required). The figure is built without pyplot (Agg canvas, no global figure
    state); a PNG is written when `path` is given.
    """
    if isinstance(data_or_probs, Tensor):
        if labels is None:
            raise ValueError("labels are required when probabilities are passed")
        data: Mapping[str, Any] = reliability_diagram(data_or_probs, labels, n_bins)
    else:
        data = data_or_probs
    lower = torch.as_tensor(data["bin_lower"], dtype=torch.float64).cpu()
    upper = torch.as_tensor(data["bin_upper"], dtype=torch.float64).cpu()
    accuracy = torch.as_tensor(data["accuracy"], dtype=torch.float64).cpu()
    confidence = torch.as_tensor(data["confidence"], dtype=torch.float64).cpu()
    filled = ~torch.isnan(accuracy)
    width = (upper - lower)[filled].tolist()
    left = lower[filled].tolist()
    acc = accuracy[filled].tolist()
    conf = confidence[filled].tolist()

    figure = Figure(figsize=(4.5, 4.5))
    axes = figure.add_subplot(1, 1, 1)
    axes.bar(left, acc, width=width, align="edge", color="tab:blue", edgecolor="black",
             linewidth=0.5, label="accuracy")
    # Hatched outline, not a fill: when accuracy exceeds confidence the gap lies inside the bar.
    axes.bar(left, [abs(c - a) for a, c in zip(acc, conf)], bottom=[min(a, c) for a, c in zip(acc, conf)],
             width=width, align="edge", fill=False, hatch="//", edgecolor="tab:red", linewidth=0.8,
             label="gap to confidence")
    axes.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1)
    if "ece" in data:
        axes.text(0.04, 0.92, f"ECE = {float(data['ece']):.4f}", transform=axes.transAxes)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence")
    axes.set_ylabel("accuracy")
    axes.set_title(title)
    axes.legend(loc="lower right")
    if path is not None:
        save_figure(figure, path)
    return figure
