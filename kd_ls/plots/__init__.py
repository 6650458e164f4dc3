"""Every figure kd-ls draws, and the one helper that writes them.

Figures are built without pyplot (matplotlib's object API on the Agg canvas), so no global
figure state is left behind and no display is needed. Only reports and analyses import this
package: training never loads matplotlib.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

DPI = 120


def save_figure(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """Write `figure` as a PNG at `path` (parents created) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=DPI, format="png", bbox_inches="tight")
    return out
