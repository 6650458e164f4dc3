"""`kd-ls study`: run a whole study from its file and print the verdict."""

from __future__ import annotations

from typing import Sequence

from kd_ls.commands.errors import ArgumentParser


def study_command(argv: Sequence[str]) -> None:
    """kd-ls study [--config FILE] [--jobs N] [--output DIR]: run a whole study, print its verdict."""
    from kd_ls.study import load_study, run_study
    from kd_ls.study.render import render_markdown

    parser = ArgumentParser(prog="kd-ls study", description="Run a teacher/student study and print its verdict.")
    parser.add_argument("--config", help="study file (YAML); default: the shipped MNIST-1D default study")
    parser.add_argument("--jobs", type=int, default=None,
                        help="runs at once in worker processes (default: the machine's cores / study.threads; "
                             "changes speed, never results)")
    parser.add_argument("--output", help="study folder (overrides the file's `output`)")
    parser.add_argument("--executor", choices=("local", "slurm", "submitit-local"),
                        help="where runs execute (overrides the file's `cluster.executor`)")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    study = load_study(args.config)
    if args.output:
        study.output = args.output
    if args.executor:
        study.cluster.executor = args.executor
    verdict = run_study(study, jobs=args.jobs, progress=not args.no_progress)
    print(render_markdown(verdict))
    print(f"Study folder: {study.output} (results.csv, verdict.md, verdict.json, plots/)")
