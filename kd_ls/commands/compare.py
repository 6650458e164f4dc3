"""`kd-ls compare`: the verdicts of several studies side by side (paired differences, Müller's
protocol, teachers), from local study folders or from W&B."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from kd_ls.commands.errors import ArgumentParser


def compare_command(argv: Sequence[str]) -> None:
    """kd-ls compare [STUDY_DIR ...] [--wandb ENTITY/PROJECT [--group NAME]] [--csv FILE]: the
    comparison tables from local study folders or from a W&B project."""
    parser = ArgumentParser(prog="kd-ls compare", description="Compare studies: paired LS-minus-plain student "
                                                               "differences, Müller's protocol and the teachers.")
    parser.add_argument("study_dirs", nargs="*", metavar="STUDY_DIR", help="local study folders")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from this W&B project (online)")
    parser.add_argument("--group", help="W&B group (study name) to read")
    parser.add_argument("--csv", help="also write the tables to this CSV file (a `table` column names each)")
    args = parser.parse_args(argv)
    from kd_ls.report.compare import comparison_tables, render, rows_from_study_dir, rows_from_wandb, write_csv

    if not args.study_dirs and not args.wandb:
        parser.error("give at least one STUDY_DIR or --wandb ENTITY/PROJECT")
    sources = {str(d): rows_from_study_dir(Path(d)) for d in args.study_dirs}
    if args.wandb:
        sources[f"wandb:{args.wandb}/{args.group or '*'}"] = rows_from_wandb(args.wandb, args.group)
    tables = comparison_tables(sources)
    print(render(tables))
    if args.csv:
        write_csv(tables, Path(args.csv))
