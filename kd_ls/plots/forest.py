"""The forest plot: every comparison of a verdict on one axis, the primary on top.

One row per comparison, in percentage points: a dot for the estimate, a thick bar for the interval
its word is decided by (the primary's and the precondition's at the look's level; a secondary's
own 95% interval, exploratory), a thin bar for a secondary's Bonferroni family-wise interval.
Filled dots are decided (the primary's word, Holm for a secondary), hollow ones are not. A zero
line and the primary's equivalence margin are drawn, so the eye reads decisions off the axis.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from matplotlib.figure import Figure

from kd_ls.plots import save_figure
from kd_ls.verdict.sentences import secondary_rows

DECIDED, OPEN = "#1f5fa8", "#7d8794"


def _primary_rows(verdict: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, label in (("primary", "PRIMARY: LS-teacher minus plain-teacher students"),
                        ("precondition", "precondition: plain-teacher students minus alone")):
        entry = verdict[name]
        low, high = entry["ci_pp"]
        rows.append({"label": f"{label} ({entry['word']})", "value": entry["estimate_pp"], "low": low, "high": high,
                     "family": None, "decided": entry["word"] != "undecided",
                     "interval": f"{100 * entry['level']:.4g}% CI"})
    return rows


def _secondary(verdict: Mapping[str, Any]) -> list[dict[str, Any]]:
    def pp(value: float | None) -> float | None:
        return None if value is None else 100 * value

    return [{"label": label, "value": pp(entry.get(key)), "low": pp(entry.get("low")), "high": pp(entry.get("high")),
             "family": (pp(entry.get("family_low")), pp(entry.get("family_high"))), "decided": bool(entry.get("holm_decided")),
             "interval": "95% CI"} for label, entry, key in secondary_rows(verdict)]


def forest_figure(verdict: Mapping[str, Any]) -> Figure:
    """The forest plot of a verdict."""
    rows = _primary_rows(verdict) + _secondary(verdict)
    figure = Figure(figsize=(9, 0.32 * len(rows) + 1.6), layout="constrained")
    axes = figure.add_subplot()
    for y, row in enumerate(rows):
        if row["value"] is None:
            axes.text(0, y, "  no estimate", va="center", fontsize=8, color=OPEN)
            continue
        color = DECIDED if row["decided"] else OPEN
        family = row["family"]
        if family and family[0] is not None:
            axes.plot(family, [y, y], color=color, linewidth=1, alpha=0.6)
        if row["low"] is not None:
            axes.plot([row["low"], row["high"]], [y, y], color=color, linewidth=3.5, solid_capstyle="butt")
        axes.plot(row["value"], y, "o", markersize=6, color=color, markerfacecolor=color if row["decided"] else "white")
    margin = verdict["primary"]["margin_pp"]
    axes.axvline(0, color="black", linewidth=0.8)
    for edge in (-margin, margin):
        axes.axvline(edge, color="black", linewidth=0.6, linestyle=":")
    axes.axhline(1.5, color="#d8dde3", linewidth=1)
    axes.set_yticks(range(len(rows)), [row["label"] for row in rows], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("difference in test accuracy (percentage points)")
    axes.set_title("Every comparison: thick = interval its word is decided by (secondaries: own 95%, exploratory), "
                   "thin = family-wise (Bonferroni);\nfilled = decided (primary: its test; secondaries: Holm at 5%); "
                   f"dotted = ±{margin:g} pp equivalence margin", fontsize=8)
    axes.grid(axis="x", color="#eef1f4")
    return figure


def plot_forest(verdict: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Draw the forest plot to ``path`` (PNG)."""
    return save_figure(forest_figure(verdict), path)
