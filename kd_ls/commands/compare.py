"""`kd-ls compare`: one table of the paired verdicts of several studies."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from kd_ls.commands.errors import ArgumentParser


def compare_command(argv: Sequence[str]) -> None:
    """kd-ls compare [STUDY_DIR ...] [--wandb ENTITY/PROJECT [--group NAME]] [--csv FILE]: one
    comparison table from local study folders or from a W&B project."""
    from kd_ls.study.compare import comparison_table, render, rows_from_study_dir, rows_from_wandb

    parser = ArgumentParser(prog="kd-ls compare", description="Compare studies' paired verdicts.")
    parser.add_argument("study_dirs", nargs="*", help="local study folders")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from this W&B project (online)")
    parser.add_argument("--group", help="W&B group (study name) to read")
    parser.add_argument("--csv", help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    if not args.study_dirs and not args.wandb:
        parser.error("give at least one STUDY_DIR or --wandb ENTITY/PROJECT")
    sources = {str(d): rows_from_study_dir(Path(d)) for d in args.study_dirs}
    if args.wandb:
        sources[f"wandb:{args.wandb}/{args.group or '*'}"] = rows_from_wandb(args.wandb, args.group)
    table = comparison_table(sources)
    print(render(table))
    if args.csv and table:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, list(table[0]))
            writer.writeheader()
            writer.writerows(table)
