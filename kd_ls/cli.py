"""The `kd-ls` command: Lightning's CLI (fit/validate/test) plus kd-ls's own commands.

Every Lightning run lands in `trainer.default_root_dir` (its *run folder*): the resolved
`config.yaml`, `checkpoints/last.ckpt`, the CSV (or W&B) logs, and `metrics.json` with the
final val and test metrics.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

from jsonargparse import ArgumentError, Namespace
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from kd_ls.data import ArrayDataModule
from kd_ls.io import atomic_write_json
from kd_ls.lit import ClassifierModule
from kd_ls.provenance import run_provenance
from kd_ls.tracking import close_wandb_runs

CSV_LOGGER = "pytorch_lightning.loggers.CSVLogger"
RICH_BAR = "pytorch_lightning.callbacks.RichProgressBar"


class ArgumentParser(argparse.ArgumentParser):
    """argparse for kd-ls's own commands: a usage error is a ValueError, printed as one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Raise instead of printing usage and exiting."""
        raise ValueError(f"{message} (see `{self.prog} --help`)")


USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError, argparse.ArgumentError, ArgumentError)


class SaveAndLogConfig(SaveConfigCallback):
    """Save the resolved config in the run folder and hand it to every logger (W&B's config)."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Log the whole resolved CLI config, flattened to dotted keys, as hyper-parameters."""
        flat = {k: v for k, v in vars(self.config.as_flat()).items() if not isinstance(v, Namespace)}
        for logger in trainer.loggers:
            logger.log_hyperparams(flat)


class KDLightningCLI(LightningCLI):
    """LightningCLI for kd-ls modules (Teacher, Student) and data modules (kd_ls.data)."""

    def __init__(self, args: Optional[Sequence[str]] = None, run: bool = True) -> None:
        with warnings.catch_warnings():
            # kd-ls calls the CLI in-process with explicit args (studies, tests): expected here.
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            self._init_cli(args, run)

    def _init_cli(self, args: Optional[Sequence[str]], run: bool) -> None:
        super().__init__(
            ClassifierModule,
            ArrayDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=SaveAndLogConfig,
            save_config_kwargs={"overwrite": True},
            seed_everything_default=0,
            auto_configure_optimizers=False,
            parser_kwargs={"exit_on_error": False},
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the data's shape into the model; make the last-epoch checkpoint configurable."""
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.input_shape", "model.init_args.input_shape", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.save_top_k": 0})

    def before_instantiate_classes(self) -> None:
        """Point logger, checkpoints and progress bar at the run folder."""
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        root = cfg.trainer.default_root_dir or os.path.join("runs", "default")
        cfg.trainer.default_root_dir = root
        if cfg.trainer.logger in (None, True):
            cfg.trainer.logger = Namespace(class_path=CSV_LOGGER, init_args=Namespace(save_dir=root, name="", version=""))
        for logger in _as_list(cfg.trainer.logger):
            if isinstance(logger, Namespace) and logger.class_path.endswith("WandbLogger"):
                # kd-ls's subclass: same arguments, plus falling back to offline logging.
                logger.class_path = "kd_ls.tracking.KDWandbLogger"
                if logger.init_args.get("save_dir") in (None, "."):
                    logger.init_args.save_dir = root
        if cfg.checkpoint.dirpath is None:
            cfg.checkpoint.dirpath = os.path.join(root, "checkpoints")
        callbacks = _as_list(cfg.trainer.callbacks)
        has_bar = any(getattr(c, "class_path", "").endswith("ProgressBar") for c in callbacks)
        if cfg.trainer.enable_progress_bar is not False and not has_bar:
            cfg.trainer.callbacks = callbacks + [Namespace(class_path=RICH_BAR, init_args=Namespace())]

    @property
    def run_dir(self) -> str:
        """The run folder: trainer.default_root_dir."""
        return self.trainer.default_root_dir

    def before_fit(self) -> None:
        """Refuse Trainer options that grouped optimizer steps (model.steps_per_call > 1) cannot honour."""
        steps = getattr(self.model, "steps_per_call", 1)
        clip, accumulate = self.trainer.gradient_clip_val, self.trainer.accumulate_grad_batches
        for name, is_set in (("gradient_clip_val", bool(clip)), ("accumulate_grad_batches", accumulate != 1)):
            if steps > 1 and is_set:
                raise ValueError(f"trainer.{name}: not available with model.steps_per_call={steps} (kd-ls takes "
                                 f"those steps itself); set model.steps_per_call=1")

    def after_fit(self) -> None:
        """Evaluate the last-epoch weights on val and test, then write metrics.json."""
        if self.trainer.interrupted:
            return
        self.collect_metrics()
        self.trainer.validate(self.model, datamodule=self.datamodule, verbose=False)
        self.collect_metrics()
        self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
        self.write_metrics()

    def after_validate(self) -> None:
        """Write metrics.json after `kd-ls validate`."""
        self.write_metrics()

    def after_test(self) -> None:
        """Write metrics.json after `kd-ls test`."""
        self.write_metrics()

    def collect_metrics(self) -> dict[str, float]:
        """Add the trainer's current train/val/test metrics to those gathered so far."""
        gathered = self.__dict__.setdefault("_metrics", {})
        gathered.update({k: float(v) for k, v in self.trainer.callback_metrics.items()
                         if k.split("/")[0] in ("train", "val", "test")})
        return gathered

    def write_metrics(self) -> None:
        """Atomically write provenance.json, then every gathered metric to metrics.json.

        metrics.json comes last: its presence means the run's files are complete."""
        values = self.collect_metrics()
        if self.trainer.is_global_zero:
            ckpt = os.path.join(self.run_dir, "checkpoints", "last.ckpt")
            teacher = self.model.hparams.get("teacher_ckpt")
            seed = self.config[self.subcommand].get("seed_everything")
            atomic_write_json(os.path.join(self.run_dir, "provenance.json"),
                              run_provenance(seed, ckpt if os.path.isfile(ckpt) else None, teacher))
            atomic_write_json(os.path.join(self.run_dir, "metrics.json"), values)
        close_wandb_runs(self.trainer, self.run_dir)


def _as_list(value: Any) -> list:
    if value in (None, True, False):
        return []
    return list(value) if isinstance(value, list) else [value]


def study_command(argv: Sequence[str]) -> None:
    """kd-ls study [--config FILE] [--jobs N] [--output DIR]: run a whole study, print its verdict."""
    from kd_ls.study import load_study, run_study
    from kd_ls.study.verdict import render_markdown

    parser = ArgumentParser(prog="kd-ls study", description=study_command.__doc__)
    parser.add_argument("--config", help="study file (YAML); default: the embedded MNIST-1D study")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (one GPU each when present)")
    parser.add_argument("--output", help="study folder (overrides the file's `output`)")
    parser.add_argument("--executor", choices=("local", "slurm", "submitit-local"),
                        help="where runs execute (overrides the file's `cluster.executor`)")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    study = load_study(args.config)
    if args.output:
        study.output = args.output
    if args.executor:
        study.cluster.executor = args.executor
    verdict = run_study(study, jobs=args.jobs, progress=not args.no_progress)
    print(render_markdown(verdict))
    print(f"Study folder: {study.output} (results.csv, verdict.md, verdict.json, plots/)")


def report_command(argv: Sequence[str]) -> None:
    """kd-ls report STUDY_DIR: rebuild results.csv, verdict and plots from stored runs."""
    from kd_ls.study.report import write_report
    from kd_ls.study.verdict import render_markdown

    parser = ArgumentParser(prog="kd-ls report", description=report_command.__doc__)
    parser.add_argument("study_dir")
    study_dir = Path(parser.parse_args(argv).study_dir)
    if not (study_dir / "study.json").is_file():
        raise FileNotFoundError(f"STUDY_DIR: '{study_dir}' holds no study.json (not a kd-ls study folder)")
    print(render_markdown(write_report(study_dir)))


def compare_command(argv: Sequence[str]) -> None:
    """kd-ls compare [STUDY_DIR ...] [--wandb ENTITY/PROJECT [--group NAME]]: one comparison
    table from local study folders or from a W&B project."""
    from kd_ls.compare import compare_main

    compare_main(argv)


def analyze_command(argv: Sequence[str]) -> None:
    """kd-ls analyze CKPT [--data FILE] [--split test] [--out DIR]: metrics and plots of a checkpoint."""
    from kd_ls.analyze import analyze_main

    analyze_main(argv)


COMMANDS = {"study": study_command, "report": report_command, "compare": compare_command, "analyze": analyze_command}


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of the `kd-ls` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in COMMANDS:
            COMMANDS[args[0]](args[1:])
        else:
            KDLightningCLI(args=argv)
    except USER_ERRORS as err:
        if os.environ.get("KD_LS_DEBUG"):
            raise
        print(f"kd-ls: error: {one_line_error(err)}", file=sys.stderr)
        sys.exit(2)


_NOISE = ("Does not validate", "Subtypes:", "Errors:", "Given value", "- Expected a <class 'NoneType'>",
          "- Problem with given class_path", "Parser key")


def one_line_error(err: BaseException) -> str:
    """One line saying which field is wrong and why, from a chain of (jsonargparse) errors."""
    chain = [err]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    lines = [line.strip() for line in str(chain[-1]).strip().splitlines() if line.strip()]
    reason = next((line.removeprefix("- ") for line in lines if not line.startswith(_NOISE)), lines[0])
    given = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Given value:")), None)
    if given and "NestedArg" not in given and given not in reason:
        reason += f" (given: {given})"
    # kd-ls's own errors name their field; jsonargparse's say the key in an outer error.
    own = isinstance(chain[-1], (ValueError, FileNotFoundError, FloatingPointError)) and len(lines) == 1 \
        and not reason.startswith(("Expected", "Option", "module "))
    key = next((m.group(1) for e in chain for m in [re.search(r'Parser key "([^"]+)"', str(e))] if m), None)
    return reason if own or not key else f"{key}: {reason}"


if __name__ == "__main__":
    main()
