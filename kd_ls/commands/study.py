"""`kd-ls study`: run a whole study from its file and print the verdict."""

from __future__ import annotations

import sys
from typing import Sequence

from kd_ls.commands.errors import ArgumentParser
from kd_ls.lightning.quiet import set_verbose


def study_command(argv: Sequence[str]) -> int:
    """kd-ls study [--config FILE] [--jobs N] [--output DIR] [--dry-run]: run a whole study, print its verdict.

    Returns 0 when every planned run finished, 1 when some failed (the verdict, written all the
    same, says it is incomplete)."""
    from kd_ls.study import load_study, run_study
    from kd_ls.report.write import verdict_markdown

    parser = ArgumentParser(prog="kd-ls study", description="Run a teacher/student study and print its verdict.")
    parser.add_argument("--config", help="study file (YAML); default: the shipped MNIST-1D default study")
    parser.add_argument("--jobs", type=int, default=None,
                        help="runs at once in worker processes (default: the machine's cores / study.threads; "
                             "changes speed, never results)")
    parser.add_argument("--runs-per-gpu", type=int, default=None,
                        help="runs at once on each GPU when --jobs is not given (overrides the file's "
                             "`cluster.runs_per_gpu`, default 1)")
    parser.add_argument("--output", help="study folder (overrides the file's `output`)")
    parser.add_argument("--executor", choices=("local", "slurm", "submitit-local"),
                        help="where runs execute (overrides the file's `cluster.executor`)")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (runs by role, which are finished, estimated cost) and train nothing")
    parser.add_argument("--verbose", action="store_true", help="every Lightning and W&B message (KD_LS_VERBOSE=1)")
    args = parser.parse_args(argv)
    set_verbose(args.verbose)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.runs_per_gpu is not None and args.runs_per_gpu < 1:
        parser.error(f"--runs-per-gpu must be >= 1, got {args.runs_per_gpu}")
    study = load_study(args.config)
    if args.output:
        study.output = args.output
    if args.executor:
        study.cluster.executor = args.executor
    if args.runs_per_gpu is not None:
        study.cluster.runs_per_gpu = args.runs_per_gpu
    if args.dry_run:
        from kd_ls.study.dry_run import describe
        from kd_ls.study.runner import default_jobs

        local = study.cluster.executor == "local"
        print(describe(study, parallel=(args.jobs or default_jobs(study)) if local else study.cluster.max_parallel))
        return 0
    verdict = run_study(study, jobs=args.jobs, progress=not args.no_progress)
    print(verdict_markdown(verdict))
    print(f"Study folder: {study.output} (results.csv, verdict.md, verdict.json, report.html, plots/)")
    return incomplete_status(verdict)


def incomplete_status(verdict: dict) -> int:
    """1 (with a line on stderr) when the verdict leaves out runs that did not finish, else 0."""
    if not verdict.get("incomplete"):
        return 0
    counts = verdict["run_counts"]
    print(f"kd-ls: incomplete: {counts['planned'] - counts['done']} of {counts['planned']} planned runs did not "
          f"finish ({counts['failed']} failed); their errors are in results.csv", file=sys.stderr)
    return 1
