"""Exploratory per-T view of the loss x LS experiment, from its committed results.csv: for each loss
and temperature, the LS-teacher minus plain-teacher students contrast (mean over the LS alphas, per
seed, 95% t interval over seeds) and the mean accuracy of each teacher's students. Not part of the
declared family (the verdict's per-loss contrasts pool T): these intervals are uncorrected.

    python experiments/loss_vs_ls/per_temperature.py [experiments/loss_vs_ls/mnist1d/results.csv]
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from kd_ls.verdict.cells import done_rows, loss_of
from kd_ls.verdict.stats import mean_interval

RESULTS = Path(__file__).parent / "mnist1d" / "results.csv"


def main(path: Path = RESULTS) -> None:
    """Print one line per (loss, T)."""
    with open(path, newline="") as f:
        students = [r for r in done_rows(csv.DictReader(f))[0] if r["role"] == "student"]
    acc = {(loss_of(r), r["teacher_alpha"], r["temperature"], r["seed"]): r["test_acc"] for r in students}
    losses = sorted({k[0] for k in acc}, key=lambda loss: (loss != "kd", loss))
    alphas = sorted({k[1] for k in acc} - {0.0})
    seeds = sorted({k[3] for k in acc})
    for loss in losses:
        for t in sorted({k[2] for k in acc if k[0] == loss}):
            diffs = [100 * sum(acc[(loss, a, t, s)] - acc[(loss, 0.0, t, s)] for a in alphas) / len(alphas) for s in seeds]
            i = mean_interval(diffs)
            means = "  ".join(f"a={a:g}: {100 * sum(acc[(loss, a, t, s)] for s in seeds) / len(seeds):.2f}%"
                              for a in [0.0, *alphas])
            print(f"{loss:5s} T={t:g}: LS minus plain {i.mean:+.2f} pp [{i.low:+.2f}, {i.high:+.2f}] (95%, uncorrected), "
                  f"n={i.n}; students {means}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS)
