"""The `kd-ls` entry point: dispatch to Lightning's run commands or to kd-ls's own.

`fit`, `validate`, `test` and `predict` are Lightning CLI commands on one run folder; `study`,
`report`, `compare`, `analyze` and `sync` are kd-ls's.

Exit codes: 0 when everything asked for is done; 1 when a study (or its report) is
incomplete because runs failed; 2 for bad input, refused with one line on stderr naming the
field; 128 + the signal number when SIGINT (130) or SIGTERM (143) stopped the command, with
every run's saved state kept for the same command to resume.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from kd_ls import __version__, interrupts
from kd_ls.commands.analyze import analyze_command
from kd_ls.commands.compare import compare_command
from kd_ls.commands.errors import USER_ERRORS, one_line_error
from kd_ls.io import read_yaml_text
from kd_ls.lightning.quiet import set_verbose
from kd_ls.commands.report import report_command
from kd_ls.commands.study import study_command
from kd_ls.commands.sync import sync_command

LIGHTNING_COMMANDS = {
    "fit": "train one run (a teacher or a student) from a YAML config: kd-ls fit --config FILE",
    "validate": "evaluate a checkpoint on the val split (results in RUN/evaluations/)",
    "test": "evaluate a checkpoint on the test split (results in RUN/evaluations/)",
    "predict": "Lightning's predict loop on a checkpoint",
}
# A kd-ls command returns its exit status (None: 0).
KD_LS_COMMANDS: dict[str, tuple[Callable[[Sequence[str]], Optional[int]], str]] = {
    "study": (study_command, "run a whole teacher/student study from one file and print its verdict"),
    "report": (report_command, "rebuild a study's results.csv, verdict, plots and report.html from its runs"),
    "compare": (compare_command, "studies side by side: paired differences, Müller's protocol, teachers (folders or W&B)"),
    "analyze": (analyze_command, "every metric and plot of one checkpoint (calibration, tightness, MI)"),
    "sync": (sync_command, "upload a study's offline W&B runs (wandb sync): kd-ls sync STUDY_DIR"),
}


def overview() -> str:
    """`kd-ls --help`: every command with a one-line description."""
    width = max(map(len, [*LIGHTNING_COMMANDS, *KD_LS_COMMANDS]))
    lines = [f"kd-ls {__version__}: do label-smoothed teachers make worse students?", "",
             "usage: kd-ls COMMAND [options]   (kd-ls COMMAND --help for a command's options)",
             "       fit, validate, test and study also take --verbose: every Lightning and W&B message (KD_LS_VERBOSE=1)", "",
             "commands:"]
    entries = {**LIGHTNING_COMMANDS, **{name: text for name, (_, text) in KD_LS_COMMANDS.items()}}
    lines += [f"  {name:<{width}}  {text}" for name, text in entries.items()]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of the `kd-ls` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(overview())
        return
    if args[0] == "--version":
        print(f"kd-ls {__version__}")
        return
    try:
        with interrupts.handling(), interrupts.raising():
            status = run_command(args)
    except interrupts.Interrupted as stop:
        print(f"kd-ls: stopped by {stop}; what was saved is kept: the same command resumes each unfinished "
              "run from its last saved epoch", file=sys.stderr)
        sys.exit(stop.exit_code)
    except USER_ERRORS as err:
        if os.environ.get("KD_LS_DEBUG"):
            raise
        print(f"kd-ls: error: {one_line_error(err)}", file=sys.stderr)
        sys.exit(2)
    if status:
        sys.exit(status)


def run_command(args: Sequence[str]) -> int:
    """Run one command line (its name first); return its exit status."""
    if args[0] in KD_LS_COMMANDS:
        return KD_LS_COMMANDS[args[0]][0](args[1:]) or 0
    if args[0] in LIGHTNING_COMMANDS:
        if "--verbose" in args:  # kd-ls's flag, not the Lightning CLI's
            set_verbose(True)
            args = [arg for arg in args if arg != "--verbose"]
        from kd_ls.lightning.harness import KDLightningCLI

        check_config_files(args[1:])
        KDLightningCLI(args=list(args))
        return 0
    raise ValueError(f"unknown command {args[0]!r}; choose one of: "
                     f"{', '.join([*LIGHTNING_COMMANDS, *KD_LS_COMMANDS])} (see `kd-ls --help`)")


def check_config_files(args: Sequence[str]) -> None:
    """Refuse a `--config` that is not a YAML text file, naming it (jsonargparse's decode error names no file)."""
    for i, arg in enumerate(args):
        name, _, value = arg.partition("=")
        if name != "--config":
            continue
        path = Path(value or (args[i + 1] if i + 1 < len(args) else ""))
        if path.is_file():  # else jsonargparse reports a missing file, or reads the value as inline YAML
            read_yaml_text(path, "--config")


if __name__ == "__main__":
    main()
