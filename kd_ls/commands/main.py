"""The `kd-ls` entry point: dispatch to Lightning's run commands or to kd-ls's own.

`fit`, `validate`, `test` and `predict` are Lightning CLI commands on one run folder; `study`,
`report`, `compare`, `analyze` and `sync` are kd-ls's.

Exit codes: 0 when everything asked for is done; 1 when a study (or its report) is
incomplete because runs failed; 2 for bad input, refused with one line on stderr naming the
field; 128 + the signal number when SIGINT (130) or SIGTERM (143) stopped the command, with
every run's saved state kept for the same command to resume.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from kd_ls import __version__, interrupts
from kd_ls.commands.errors import is_user_error, one_line_error
from kd_ls.io import read_yaml_text
from kd_ls.names import did_you_mean

LIGHTNING_COMMANDS = {
    "fit": "train one run (a teacher or a student) from a YAML config: kd-ls fit --config FILE",
    "validate": "evaluate a checkpoint on the val split (results in RUN/evaluations/)",
    "test": "evaluate a checkpoint on the test split (results in RUN/evaluations/)",
    "predict": "Lightning's predict loop on a checkpoint",
}
# A kd-ls command is the function `<name>_command` of kd_ls/commands/<name>.py, imported when it
# runs (so `kd-ls --help` loads no command); it returns its exit status (None: 0).
KD_LS_COMMANDS: dict[str, str] = {
    "study": "run a whole teacher/student study from one file and print its verdict",
    "report": "rebuild a study's results.csv, verdict, plots and report.html from its runs",
    "compare": "studies side by side: paired differences, Müller's protocol, teachers (folders or W&B)",
    "analyze": "every metric and plot of one checkpoint (calibration, tightness, MI)",
    "sync": "upload a study's offline W&B runs (wandb sync): kd-ls sync STUDY_DIR",
}


def command_function(name: str) -> Callable[[Sequence[str]], Optional[int]]:
    """The function of kd-ls command `name`, imported now."""
    return getattr(importlib.import_module(f"kd_ls.commands.{name}"), f"{name}_command")


def overview() -> str:
    """`kd-ls --help`: every command with a one-line description."""
    width = max(map(len, [*LIGHTNING_COMMANDS, *KD_LS_COMMANDS]))
    lines = [f"kd-ls {__version__}: do label-smoothed teachers make worse students?", "",
             "usage: kd-ls COMMAND [options]   (kd-ls COMMAND --help for a command's options)",
             "       fit, validate, test and study also take --verbose: every Lightning and W&B message (KD_LS_VERBOSE=1)", "",
             "commands:"]
    entries = {**LIGHTNING_COMMANDS, **KD_LS_COMMANDS}
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
    except Exception as err:  # noqa: BLE001 - sorted here: bad input is one line, a bug keeps its traceback
        if not is_user_error(err) or os.environ.get("KD_LS_DEBUG"):
            raise
        print(f"kd-ls: error: {one_line_error(err)}", file=sys.stderr)
        sys.exit(2)
    if status:
        sys.exit(status)


def run_command(args: Sequence[str]) -> int:
    """Run one command line (its name first); return its exit status."""
    if args[0] in KD_LS_COMMANDS:
        return command_function(args[0])(args[1:]) or 0
    if args[0] in LIGHTNING_COMMANDS:
        if "--verbose" in args:  # kd-ls's flag, not the Lightning CLI's
            from kd_ls.lightning.quiet import set_verbose

            set_verbose(True)
            args = [arg for arg in args if arg != "--verbose"]
        from kd_ls.lightning.harness import KDLightningCLI

        check_config_files(args[1:])
        cli = KDLightningCLI(args=list(args))
        print_result(cli.trainer.default_root_dir, "val" if args[0] == "validate" else "test")
        return 0
    commands = [*LIGHTNING_COMMANDS, *KD_LS_COMMANDS]
    raise ValueError(f"unknown command {args[0]!r}; choose one of: {', '.join(commands)}"
                     f"{did_you_mean(args[0], commands)} (see `kd-ls --help`)")


def print_result(run_dir: str, split: str) -> None:
    """The last line of a fit / validate / test: the split's accuracy, NLL and ECE from the run's
    metrics.json (nothing when it holds none: a predict, or a fit stopped early)."""
    import json

    from kd_ls.layout import RunLayout
    from kd_ls.lightning.progress import result_line

    path = RunLayout.of(run_dir).metrics
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    if f"{split}/acc" in metrics:
        print(result_line(metrics, split, str(path)), flush=True)


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
