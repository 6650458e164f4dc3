"""Re-decide committed studies from their committed results.csv under the current verdict rules.

The committed study folders under experiments/ keep results.csv, study.json, the analyses and the
plots, not the runs' checkpoints, so `kd-ls report` cannot rebuild them (it refuses rather than lose
runs). This script rebuilds what depends only on the results: verdict.json, verdict.md, the
primary's history, the verdict's figures (forest plot, paired difference, mechanism) and
report.html. These studies ran before kd-ls declared a primary question, so the primary gets its
defaults (every LS alpha and temperature, the first loss, ±0.5 pp, pooled precondition, one look)
and the verdict says it was declared after the runs.

    python experiments/reverdict.py experiments/*/mnist1d experiments/mueller2019_cifar10/cpu
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from kd_ls.io import atomic_write_json, atomic_write_text
from kd_ls.layout import StudyLayout
from kd_ls.plots.forest import plot_forest
from kd_ls.plots.study import plot_mechanism, plot_paired_difference
from kd_ls.report.history import now, save_history
from kd_ls.report.page import write_report_page
from kd_ls.report.render import render_markdown
from kd_ls.report.write import completeness
from kd_ls.verdict import sequential
from kd_ls.verdict.build import build_verdict

POST_HOC = ("**Declared after the runs:** this study ran before kd-ls declared primary questions; its primary is "
            "the default one (not chosen from the results) and was decided from the committed results.csv by "
            "experiments/reverdict.py.")


def reverdict(folder: Path) -> dict:
    """Rebuild one committed study folder's verdict, its figures and report.html; return the verdict."""
    layout = StudyLayout.of(folder)
    with open(layout.results, newline="") as f:
        rows = list(csv.DictReader(f))
    study = json.loads(layout.manifest.read_text())["study"]
    verdict = build_verdict(rows, sequential.design_of(study), None, None, now())
    save_history(folder, verdict["design"])
    verdict.update(completeness(rows))
    verdict["notes"] = [POST_HOC]
    atomic_write_json(layout.verdict_json, verdict)
    atomic_write_text(layout.verdict_md, render_markdown(verdict))
    plot_forest(verdict, layout.forest_plot)
    plot_paired_difference(verdict, layout.plot("paired_difference_vs_temperature"))
    plot_mechanism(verdict, layout.plot("mechanism"))
    write_report_page(folder)
    return verdict


def main() -> None:
    """Re-decide every folder given on the command line and print each headline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    for folder in parser.parse_args().folders:
        print(f"{folder}:\n  {reverdict(folder)['headline']}\n")


if __name__ == "__main__":
    main()
