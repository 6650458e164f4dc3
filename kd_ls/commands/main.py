"""The `kd-ls` entry point: dispatch to Lightning's run commands or to kd-ls's own.

`fit`, `validate`, `test` and `predict` are Lightning CLI commands on one run folder; `study`,
`report`, `compare` and `analyze` are kd-ls's. Bad input of any command is one line on stderr
naming the field, exit code 2.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Optional, Sequence

from kd_ls import __version__
from kd_ls.commands.analyze import analyze_command
from kd_ls.commands.compare import compare_command
from kd_ls.commands.errors import USER_ERRORS, one_line_error
from kd_ls.commands.report import report_command
from kd_ls.commands.study import study_command

LIGHTNING_COMMANDS = {
    "fit": "train one run (a teacher or a student) from a YAML config: kd-ls fit --config FILE",
    "validate": "evaluate a checkpoint on the val split (results in RUN/evaluations/)",
    "test": "evaluate a checkpoint on the test split (results in RUN/evaluations/)",
    "predict": "Lightning's predict loop on a checkpoint",
}
KD_LS_COMMANDS: dict[str, tuple[Callable[[Sequence[str]], None], str]] = {
    "study": (study_command, "run a whole teacher/student study from one file and print its verdict"),
    "report": (report_command, "rebuild a study's results.csv, verdict, plots and report from its runs"),
    "compare": (compare_command, "one table of paired verdicts across study folders or a W&B project"),
    "analyze": (analyze_command, "every metric and plot of one checkpoint (calibration, tightness, MI)"),
}


def overview() -> str:
    """`kd-ls --help`: every command with a one-line description."""
    width = max(map(len, [*LIGHTNING_COMMANDS, *KD_LS_COMMANDS]))
    lines = [f"kd-ls {__version__}: do label-smoothed teachers make worse students?", "",
             "usage: kd-ls COMMAND [options]   (kd-ls COMMAND --help for a command's options)", "",
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
        if args[0] in KD_LS_COMMANDS:
            KD_LS_COMMANDS[args[0]][0](args[1:])
        elif args[0] in LIGHTNING_COMMANDS:
            from kd_ls.lightning.harness import KDLightningCLI

            KDLightningCLI(args=args)
        else:
            raise ValueError(f"unknown command {args[0]!r}; choose one of: "
                             f"{', '.join([*LIGHTNING_COMMANDS, *KD_LS_COMMANDS])} (see `kd-ls --help`)")
    except USER_ERRORS as err:
        if os.environ.get("KD_LS_DEBUG"):
            raise
        print(f"kd-ls: error: {one_line_error(err)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
