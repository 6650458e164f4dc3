"""`kd-ls study`: run a whole study from its file and print the verdict."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from kd_ls.commands.errors import ArgumentParser


def study_command(argv: Sequence[str]) -> int:
    """kd-ls study [--config FILE] [--jobs N] [--output DIR] [--dry-run]: run a whole study, print its verdict.

    Returns 0 when every planned run finished, 1 when some failed (the verdict, written all the
    same, says it is incomplete). The library is imported after the arguments are parsed, so
    `--help` and usage errors answer at once."""
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
    parser.add_argument("--until-decided", action="store_true",
                        help="add seeds in rounds (only the new seeds' runs train) until the primary question is "
                             "decided or --max-seeds is reached; the looks are planned before the first and share "
                             "the 5%% error rate (same as `until_decided:` in the study file)")
    parser.add_argument("--max-seeds", type=int, default=None,
                        help="with --until-decided: the most seeds (default: the file's, else 10)")
    parser.add_argument("--round", type=int, default=None,
                        help="with --until-decided: seeds added per round (default: the file's, else 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (runs by role, which are finished, estimated cost) and train nothing")
    parser.add_argument("--adopt", action="store_true",
                        help="take over a study folder that belongs to another study file, and grow it from this one")
    parser.add_argument("--new", metavar="NAME",
                        help="write a starter study file (a copy of the default study with name NAME and output "
                             "runs/study/NAME) to ./NAME.yaml, or to NAME when it ends in .yaml; trains nothing")
    parser.add_argument("--verbose", action="store_true", help="every Lightning and W&B message (KD_LS_VERBOSE=1)")
    args = parser.parse_args(argv)
    if args.new is not None:
        return new_study_file(args.new)
    from kd_ls.lightning.quiet import set_verbose
    from kd_ls.study import load_study

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
    if (args.max_seeds is not None or args.round is not None) and not (args.until_decided or study.until_decided):
        parser.error("--max-seeds and --round need --until-decided (or `until_decided:` in the study file)")
    if args.until_decided or args.max_seeds is not None or args.round is not None:
        study = sequential_study(study, args.max_seeds, args.round)
    if args.dry_run:
        from kd_ls.study.dry_run import describe
        from kd_ls.study.runner import default_jobs

        local = study.cluster.executor == "local"
        print(describe(study, parallel=(args.jobs or default_jobs(study)) if local else study.cluster.max_parallel,
                       source=args.config))
        return 0
    from kd_ls.study import run_study

    verdict = run_study(study, jobs=args.jobs, progress=not args.no_progress, source=args.config, adopt=args.adopt)
    print_verdict(verdict, Path(study.output))
    return incomplete_status(verdict)


def new_study_file(name: str) -> int:
    """`kd-ls study --new NAME`: write the starter study file and say how to run it."""
    from kd_ls.study.ownership import write_starter

    name, path = write_starter(name)
    print(f"Wrote {path}: a copy of the default study named '{name}', writing to runs/study/{name}.\n"
          f"Edit it (grid, seeds, recipes), then:\n  kd-ls study --config {path} --dry-run   # the plan and its cost\n"
          f"  kd-ls study --config {path}             # run it")
    return 0


def sequential_study(study: Any, max_seeds: Optional[int], round_size: Optional[int]) -> Any:
    """The study with seeds added until decided: the file's `until_decided` with the command line's
    numbers over it, validated like the file."""
    import dataclasses

    from kd_ls.study.spec import UntilDecided, validate

    plan = study.until_decided or UntilDecided()
    plan = UntilDecided(max_seeds=plan.max_seeds if max_seeds is None else max_seeds,
                        round=plan.round if round_size is None else round_size)
    return validate(dataclasses.replace(study, until_decided=plan))


def print_verdict(verdict: dict, study_dir: Path) -> None:
    """The verdict on stdout as plain text (headline, compact table), then where the rest is."""
    from kd_ls.layout import StudyLayout
    from kd_ls.report.render import render_text

    layout = StudyLayout.of(study_dir)
    print(render_text(verdict))
    print(f"\nDetails: {layout.verdict_md}\nReport:  {layout.report_html}\n"
          f"Folder:  {study_dir} (results.csv, verdict.json, plots/)")


def incomplete_status(verdict: dict) -> int:
    """1 (with a line on stderr) when the verdict leaves out runs that did not finish, else 0."""
    if not verdict.get("incomplete"):
        return 0
    counts = verdict["run_counts"]
    print(f"kd-ls: incomplete: {counts['planned'] - counts['done']} of {counts['planned']} planned runs did not "
          f"finish ({counts['failed']} failed); their errors are in results.csv", file=sys.stderr)
    return 1
