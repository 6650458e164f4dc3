"""Issue 20's three conditions recomputed by hand from a kd-ls study's results.csv.

* Plain teachers: test accuracy of the alpha = 0 teachers, per seed and mean (target >= 97%).
* Precondition: per seed, the mean over the study's temperatures of the plain-teacher students'
  test accuracy minus the student alone's; and, as the alternative a study may declare, the
  plain-teacher student at the temperature with the best val accuracy (per seed; and one T for
  all seeds, chosen on the val accuracy averaged over seeds).
* Primary: per seed, the mean over LS alphas and temperatures of LS-teacher students minus the
  mean over temperatures of plain-teacher students.

Each contrast gets a one-sample Student-t 95% interval over seeds (t on n - 1 df) and a
two-sided p. Accuracies in percentage points.

    python experiments/default_regime/decide.py path/to/results.csv [--temperatures 2 4] [--seeds 0 1 2 3]

`--temperatures` and `--seeds` read a sub-grid of the study (what a smaller study with the same
settings would give: its runs are the same runs, deterministic on one thread).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
from scipy import stats


def t_interval(d: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, 95% Student-t interval (n - 1 df) and two-sided p of per-seed contrasts d."""
    n, m = len(d), float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(n)
    h = float(stats.t.ppf(0.975, n - 1)) * se
    p = float(2 * stats.t.sf(abs(m) / se, n - 1)) if se > 0 else float("nan")
    return m, m - h, m + h, p


def line(name: str, d: pd.Series) -> str:
    """One result line: estimate, interval, n, p, per-seed values and whether it is decided."""
    m, lo, hi, p = t_interval(d.to_numpy())
    word = "decided" if lo > 0 or hi < 0 else "undecided"
    per_seed = ", ".join(f"{v:+.2f}" for v in d)
    return f"{name}: {m:+.2f} pp [{lo:+.2f}, {hi:+.2f}], n = {len(d)}, p = {p:.4f}, {word}  (per seed: {per_seed})"


def main() -> None:
    """Print teacher accuracy, precondition and primary for one results.csv."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="a study's results.csv")
    p.add_argument("--temperatures", nargs="*", type=float, help="only these temperatures (default: all)")
    p.add_argument("--seeds", nargs="*", type=int, help="only these seeds (default: all)")
    args = p.parse_args()
    r = pd.read_csv(args.results)
    r = r[r.status == "done"].assign(acc=lambda d: 100 * d.test_acc, val=lambda d: 100 * d.val_acc)
    if args.seeds:
        r = r[r.seed.isin(args.seeds)]
    if args.temperatures:
        r = r[(r.role != "student") | r.temperature.isin(args.temperatures)]

    teachers = r[(r.role == "teacher") & (r.alpha == 0.0)].set_index("seed").acc.sort_index()
    print(f"plain teachers: mean {teachers.mean():.2f}%  (per seed: {', '.join(f'{a:.2f}' for a in teachers)})")
    for alpha, t in r[(r.role == "teacher") & (r.alpha > 0)].groupby("alpha"):
        print(f"LS teachers alpha={alpha:g}: mean {t.acc.mean():.2f}%")

    alone = r[(r.role == "baseline") & (r.alpha == 0.0)].set_index("seed").acc.sort_index()
    students = r[r.role == "student"]
    plain = students[students.teacher_alpha == 0.0]
    plain_mean = plain.groupby("seed").acc.mean()
    ls_mean = students[students.teacher_alpha > 0].groupby("seed").acc.mean()
    print(f"student alone: mean {alone.mean():.2f}%; plain-teacher students per T: "
          + ", ".join(f"T={t:g} {a:.2f}" for t, a in plain.groupby("temperature").acc.mean().items()))
    print(line("precondition, pooled over T", plain_mean - alone))

    # Val-chosen temperature: per seed, and one T for all seeds (val accuracy averaged over seeds).
    best = plain.loc[plain.groupby("seed").val.idxmax()].set_index("seed")
    print(line(f"precondition, val-chosen T per seed ({', '.join(f'{t:g}' for t in best.temperature)})",
               best.acc - alone))
    t_all = plain.groupby("temperature").val.mean().idxmax()
    print(line(f"precondition, val-chosen T = {t_all:g} for all seeds",
               plain[plain.temperature == t_all].set_index("seed").acc.sort_index() - alone))
    print(line("primary (LS-teacher minus plain-teacher students)", ls_mean - plain_mean))


if __name__ == "__main__":
    main()
