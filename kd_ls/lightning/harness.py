"""One `kd-ls fit` / `validate` / `test` run: the Lightning CLI set up for kd-ls.

Every run lands in `trainer.default_root_dir`, its *run folder* (kd_ls/layout.py names its
files): the resolved config, the last-epoch checkpoint, the CSV (or W&B) logs, provenance and
`metrics.json` with the final val and test metrics. Studies run each of their runs through
this harness, in-process.

A fit saves a resumable checkpoint while it trains (`ResumeCheckpoint`); `kd-ls fit` on a run
folder that holds one continues from it, to the same numbers as an uninterrupted run.
`validate` and `test` never write into a training run's folder: their files go to
RUN/evaluations/<command>-<checkpoint name>/ (or a folder that holds no run).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from jsonargparse import Namespace
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import Checkpoint, ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.strategies import Strategy

from kd_ls.data import ArrayDataModule, TensorBatches
from kd_ls.io import atomic_write_json
from kd_ls.layout import RunLayout
from kd_ls.lightning import internals
from kd_ls.lightning.checkpoint import read_checkpoint
from kd_ls.lightning.module import ClassifierModule
from kd_ls.lightning.quiet import quiet
from kd_ls.lightning.resume_files import remove_resume_data, save_linked
from kd_ls.lightning.wandb_logger import close_wandb_runs
from kd_ls.provenance import run_provenance

CSV_LOGGER = "pytorch_lightning.loggers.CSVLogger"
# Progress in epochs and optimizer steps, and a summary without Lightning's always-0 FLOPs (progress.py).
PROGRESS_BAR = "kd_ls.lightning.progress.StepProgressBar"
MODEL_SUMMARY = "kd_ls.lightning.progress.RunSummary"
EVALUATIONS = ("validate", "test", "predict")
# Config keys that change where files go or what is shown, never a number of the run: a run
# folder resumes under any values of them.
NOT_RESULTS = ("config", "ckpt_path", "resume", "checkpoint", "trainer.default_root_dir", "trainer.logger",
               "trainer.callbacks", "trainer.enable_progress_bar", "trainer.enable_model_summary")


class SaveAndLogConfig(SaveConfigCallback):
    """Save the resolved config in the run folder and hand it to every logger (W&B's config)."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Log the whole resolved CLI config, flattened to dotted keys, as hyper-parameters."""
        flat = {k: v for k, v in vars(self.config.as_flat()).items() if not isinstance(v, Namespace)}
        for logger in trainer.loggers:
            logger.log_hyperparams(flat)


class ResumeCheckpoint(Checkpoint):
    """Save the run's complete training state to RUN/checkpoints/resume.ckpt (atomically) at the
    end of every `every_n_epochs`-th epoch but the last.

    resume.ckpt is a relative symbolic link to the newest of the data files beside it
    (.resume-epoch=N-*.ckpt, N the epochs it holds), swapped in one rename at each save
    (resume_files.py: why, and what it saves), so it always names a complete checkpoint.

    Lightning's checkpoint holds the weights, optimizer and schedule, the loop counters (the
    global step, grouped steps' counter among them) and the modules' buffers (online label
    smoothing's per-epoch targets). This callback adds the random state that lives outside
    them, so a resumed run draws exactly what an uninterrupted one would: the generator of the
    training batches' order (kd-ls loaders reseed theirs when built), the augmentation
    generator and torch's global generator (dropout); and a fingerprint of the config, so that
    only the config that saved it resumes a folder. A run stopped during its last epoch, or
    during its final evaluation, redoes that epoch.

    Args:
        every_n_epochs: save after every n-th epoch; a larger n costs less on very short epochs
            and redoes up to n epochs after a stop.
    """

    def __init__(self, every_n_epochs: int = 1) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"resume.every_n_epochs must be >= 1, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self.fingerprint: Optional[str] = None  # set by KDLightningCLI before fitting
        self.log_rows: list[dict[str, str]] = []  # metrics.csv rows of the attempts before this one
        self._trainer: Optional[Trainer] = None
        self._restored: Optional[dict[str, Any]] = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Remember the trainer: state_dict() is called without one."""
        self._trainer = trainer

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Save after the module's own epoch end (online LS has swapped its targets): Lightning
        runs Checkpoint callbacks after the module's hook."""
        if (trainer.current_epoch + 1) % self.every_n_epochs or _is_last_epoch(trainer):
            return
        path = RunLayout.of(trainer.default_root_dir).resume_checkpoint
        if type(trainer.strategy).save_checkpoint is not Strategy.save_checkpoint:
            # The strategy writes its own way (sharded states, DeepSpeed's engine): Lightning's writer.
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            trainer.save_checkpoint(tmp, weights_only=False)  # the whole training state (explicit: no log line)
            if trainer.is_global_zero:
                os.replace(tmp, path)  # same folder: atomic, so a kill never leaves half a checkpoint
            return
        checkpoint = internals.training_state(trainer)  # on every rank, as Trainer.save_checkpoint does
        if trainer.is_global_zero:
            save_linked(checkpoint, path, trainer.current_epoch + 1)
        trainer.strategy.barrier("ResumeCheckpoint.on_train_epoch_end")

    def state_dict(self) -> dict[str, Any]:
        """The config fingerprint and the random state outside Lightning's checkpoint."""
        trainer = self._trainer
        state: dict[str, Any] = {"fingerprint": self.fingerprint, "torch": torch.get_rng_state()}
        if torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        if trainer is not None:
            state.update({name: generator.get_state() for name, generator in _run_generators(trainer).items()})
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the saved random state for on_train_start: the training loader does not exist yet."""
        self._restored = state_dict

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Put back the saved random state and the earlier attempts' metrics.csv rows."""
        for logger in trainer.loggers:
            if isinstance(logger, CSVLogger) and Path(logger.log_dir) == RunLayout.of(trainer.default_root_dir).root:
                internals.prepend_csv_rows(logger, self.log_rows)
        state, self._restored = self._restored, None
        if state is None:
            return
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        for name, generator in _run_generators(trainer).items():
            if name in state:
                generator.set_state(state[name])


def _is_last_epoch(trainer: Trainer) -> bool:
    """Whether the epoch ending now is the fit's last (epoch or step limit, or an early stop)."""
    epochs_done = trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= trainer.max_epochs
    steps_done = trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps
    return epochs_done or steps_done or trainer.should_stop


def _run_generators(trainer: Trainer) -> dict[str, torch.Generator]:
    """The kd-ls data module's own generators: training batch order and augmentation."""
    generators = {}
    loader = trainer.train_dataloader
    if isinstance(loader, TensorBatches):
        generators["data_order"] = loader.generator
    augment = getattr(trainer.datamodule, "augment_generator", None)
    if isinstance(augment, torch.Generator):
        generators["augment"] = augment
    return generators


def saved_epochs(checkpoint: Path) -> int:
    """How many epochs a resumable checkpoint holds (it was saved at the end of the last of them)."""
    return _epochs(read_checkpoint(checkpoint, "trainer.default_root_dir"))


def _epochs(checkpoint: dict[str, Any]) -> int:
    return int(checkpoint["epoch"]) + 1


class KDLightningCLI(LightningCLI):
    """LightningCLI for kd-ls modules (Teacher, Student) and data modules (kd_ls.data)."""

    def __init__(self, args: Optional[Sequence[str]] = None, run: bool = True) -> None:
        quiet()
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
        """Link the data's shape into the model; make the last-epoch and resumable checkpoints configurable."""
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.input_shape", "model.init_args.input_shape", apply_on="instantiate")
        # The model owns steps_per_call (it decides manual optimization); the data module groups
        # its training batches to match.
        parser.link_arguments("model.init_args.steps_per_call", "data.init_args.steps_per_call", apply_on="parse")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.save_top_k": 0})
        parser.add_lightning_class_args(ResumeCheckpoint, "resume")

    def before_instantiate_classes(self) -> None:
        """Point logger, checkpoints and progress bar at the run folder (an evaluation's own folder
        for validate / test / predict)."""
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        if self.subcommand == "fit":
            check_length(cfg.trainer.max_epochs, cfg.trainer.max_steps)
        root = cfg.trainer.default_root_dir or os.path.join("runs", "default")
        if self.subcommand in EVALUATIONS:
            root = str(evaluation_folder(Path(root), self.subcommand, cfg.get("ckpt_path")))
            keep_out_of_runs(cfg, Path(root))
        cfg.trainer.default_root_dir = root
        if cfg.trainer.logger in (None, True):
            cfg.trainer.logger = Namespace(class_path=CSV_LOGGER, init_args=Namespace(save_dir=root, name="", version=""))
        for logger in _as_list(cfg.trainer.logger):
            if isinstance(logger, Namespace) and logger.class_path.endswith("WandbLogger"):
                # kd-ls's subclass: same arguments, plus falling back to offline logging.
                logger.class_path = "kd_ls.lightning.wandb_logger.KDWandbLogger"
                if logger.init_args.get("save_dir") in (None, "."):
                    logger.init_args.save_dir = root
        if cfg.checkpoint.dirpath is None:
            cfg.checkpoint.dirpath = str(RunLayout.of(root).checkpoints)
        callbacks = _as_list(cfg.trainer.callbacks)
        has_bar = any(getattr(c, "class_path", "").endswith("ProgressBar") for c in callbacks)
        if cfg.trainer.enable_progress_bar is not False and not has_bar:
            callbacks.append(Namespace(class_path=PROGRESS_BAR, init_args=Namespace()))
        if cfg.trainer.enable_model_summary is not False and not any("Summary" in getattr(c, "class_path", "")
                                                                   for c in callbacks):
            callbacks.append(Namespace(class_path=MODEL_SUMMARY, init_args=Namespace()))
        cfg.trainer.callbacks = callbacks or cfg.trainer.callbacks

    @property
    def run_dir(self) -> str:
        """The run folder: trainer.default_root_dir."""
        return self.trainer.default_root_dir

    def before_fit(self) -> None:
        """Refuse a run kd-ls cannot schedule, and continue one the run folder holds the saved state of."""
        self.check_grouped_steps()
        resume = next(c for c in self.trainer.callbacks if isinstance(c, ResumeCheckpoint))
        resume.fingerprint = config_fingerprint(self.config[self.subcommand])
        checkpoint = RunLayout.of(self.run_dir).resume_checkpoint
        if self.config_init[self.subcommand].get("ckpt_path") is None and checkpoint.is_file():
            epochs = check_resumable(checkpoint, resume)
            resume.log_rows = earlier_log_rows(RunLayout.of(self.run_dir).metrics_csv, epochs)
            self.config_init[self.subcommand]["ckpt_path"] = str(checkpoint)

    def check_grouped_steps(self) -> None:
        """Refuse Trainer options that grouped optimizer steps (model.steps_per_call > 1) cannot honour."""
        steps = getattr(self.model, "steps_per_call", 1)
        clip, accumulate = self.trainer.gradient_clip_val, self.trainer.accumulate_grad_batches
        for name, is_set in (("gradient_clip_val", bool(clip)), ("accumulate_grad_batches", accumulate != 1)):
            if steps > 1 and is_set:
                raise ValueError(f"trainer.{name}: not available with model.steps_per_call={steps} (kd-ls takes "
                                 f"those steps itself); set model.steps_per_call=1")

    def after_fit(self) -> None:
        """Evaluate the last-epoch weights on val and test, write metrics.json, drop the resumable state."""
        if self.trainer.interrupted:
            return
        self.collect_metrics()
        self.trainer.validate(self.model, datamodule=self.datamodule, verbose=False)
        self.collect_metrics()
        self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
        self.write_metrics(RunLayout.of(self.run_dir).last_checkpoint)
        if self.trainer.is_global_zero:
            resume = RunLayout.of(self.run_dir).resume_checkpoint
            resume.unlink(missing_ok=True)  # the run ended; the link first, so that it never dangles
            remove_resume_data(resume)

    def after_validate(self) -> None:
        """Write metrics.json after `kd-ls validate`."""
        self.write_evaluation()

    def after_test(self) -> None:
        """Write metrics.json after `kd-ls test`."""
        self.write_evaluation()

    def write_evaluation(self) -> None:
        """metrics.json of the evaluated checkpoint, and where it went (on stderr: stdout holds Lightning's table)."""
        ckpt = self.config[self.subcommand].get("ckpt_path")
        self.write_metrics(Path(ckpt) if ckpt else None)
        print(f"kd-ls: {self.subcommand} results in {RunLayout.of(self.run_dir).metrics}", file=sys.stderr)

    def collect_metrics(self) -> dict[str, float]:
        """Add the trainer's current train/val/test metrics to those gathered so far."""
        gathered = self.__dict__.setdefault("_metrics", {})
        gathered.update({k: float(v) for k, v in self.trainer.callback_metrics.items()
                         if k.split("/")[0] in ("train", "val", "test")})
        return gathered

    def write_metrics(self, ckpt: Optional[Path]) -> None:
        """Atomically write provenance.json (naming the checkpoint `ckpt`), then every gathered
        metric to metrics.json.

        metrics.json comes last: its presence means the run's files are complete."""
        values = self.collect_metrics()
        if self.trainer.is_global_zero:
            layout = RunLayout.of(self.run_dir)
            teacher = self.model.hparams.get("teacher_ckpt")
            seed = self.config[self.subcommand].get("seed_everything")
            checkpoint = str(ckpt) if ckpt is not None and ckpt.is_file() else None
            atomic_write_json(layout.provenance, run_provenance(seed, checkpoint, teacher))
            atomic_write_json(layout.metrics, values)
        close_wandb_runs(self.trainer, self.run_dir)


def check_length(max_epochs: Optional[int], max_steps: int) -> None:
    """Refuse a fit without an end (Lightning reads max_epochs -1 as no limit): kd-ls's
    learning-rate schedules span the whole run. None is Lightning's default length."""
    if max_epochs is None or max_epochs >= 1 or (max_epochs == -1 and max_steps > 0):
        return
    raise ValueError(f"trainer.max_epochs: must be >= 1, or -1 (no epoch limit) with trainer.max_steps > 0, since "
                     f"kd-ls's learning-rate schedules span the whole run; got {max_epochs}")


def holds_run(folder: Path) -> bool:
    """Whether a folder holds a run's (or an evaluation's) files."""
    layout = RunLayout.of(folder)
    return layout.config.exists() or layout.metrics.exists() or layout.checkpoints.exists()


def evaluation_folder(root: Path, command: str, ckpt: Optional[str]) -> Path:
    """Where `kd-ls validate` / `test` / `predict` writes: `root` when it holds no run, else
    RUN/evaluations/<command>-<checkpoint name>/ of the checkpoint's run folder (of `root`
    when the checkpoint is not in a run's checkpoints/ folder), so that an evaluation never
    touches the files of the training run it evaluates."""
    if not holds_run(root):
        return root
    layout = RunLayout.of(root)
    if ckpt and RunLayout.of_checkpoint(ckpt).checkpoints == Path(ckpt).resolve().parent:
        layout = RunLayout.of_checkpoint(ckpt)
    return layout.evaluation(f"{command}-{Path(ckpt).stem if ckpt else 'untrained'}")


def keep_out_of_runs(cfg: Namespace, folder: Path) -> None:
    """Point an evaluation's loggers and checkpoint folder at its own `folder` where they aim
    at another run's folder (a run's config.yaml aims them at that run)."""
    for logger in _as_list(cfg.trainer.logger):
        save_dir = logger.init_args.get("save_dir") if isinstance(logger, Namespace) else None
        if save_dir and Path(save_dir) != folder and holds_run(Path(save_dir)):
            logger.init_args.save_dir = str(folder)
    dirpath = cfg.checkpoint.dirpath
    if dirpath and Path(dirpath).parent != folder and holds_run(Path(dirpath).parent):
        cfg.checkpoint.dirpath = None  # the evaluation folder's own, set below


def config_fingerprint(config: Namespace) -> str:
    """SHA-256 (16 hex digits) of the resolved config, leaving out what never changes a number."""
    kept = config.clone()
    for key in NOT_RESULTS:
        if key in kept:
            kept.pop(key)
    text = json.dumps(kept.as_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_resumable(checkpoint: Path, resume: ResumeCheckpoint) -> int:
    """The epochs a run folder's resumable checkpoint holds, after checking that this config saved it."""
    loaded = read_checkpoint(checkpoint, "trainer.default_root_dir")
    saved = loaded.get("callbacks", {}).get(resume.state_key, {})
    if saved.get("fingerprint") != resume.fingerprint:
        raise ValueError(f"trainer.default_root_dir: '{checkpoint.parent.parent}' holds the saved state of an "
                         f"interrupted run of another config ({checkpoint}); resume it with that run's config.yaml, "
                         "or delete the file to start afresh")
    return _epochs(loaded)


def earlier_log_rows(metrics_csv: Path, epochs: int) -> list[dict[str, str]]:
    """The rows of a run's metrics.csv from its first `epochs` epochs (what a resumed run keeps)."""
    if not metrics_csv.is_file():
        return []
    with open(metrics_csv, newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("epoch", "").isdigit() and int(row["epoch"]) < epochs]


def _as_list(value: Any) -> list:
    if value in (None, True, False):
        return []
    return list(value) if isinstance(value, list) else [value]
