"""One `kd-ls fit` / `validate` / `test` run: the Lightning CLI set up for kd-ls.

Every run lands in `trainer.default_root_dir`, its *run folder* (kd_ls/layout.py names its
files): the resolved config, the last-epoch checkpoint, the CSV (or W&B) logs, provenance and
`metrics.json` with the final val and test metrics. Studies run each of their runs through
this harness, in-process.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Optional, Sequence

from jsonargparse import Namespace
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from kd_ls.data import ArrayDataModule
from kd_ls.io import atomic_write_json
from kd_ls.layout import RunLayout
from kd_ls.lightning.module import ClassifierModule
from kd_ls.lightning.wandb_logger import close_wandb_runs
from kd_ls.provenance import run_provenance

CSV_LOGGER = "pytorch_lightning.loggers.CSVLogger"
RICH_BAR = "pytorch_lightning.callbacks.RichProgressBar"


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
        # The model owns steps_per_call (it decides manual optimization); the data module groups
        # its training batches to match.
        parser.link_arguments("model.init_args.steps_per_call", "data.init_args.steps_per_call", apply_on="parse")
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
                logger.class_path = "kd_ls.lightning.wandb_logger.KDWandbLogger"
                if logger.init_args.get("save_dir") in (None, "."):
                    logger.init_args.save_dir = root
        if cfg.checkpoint.dirpath is None:
            cfg.checkpoint.dirpath = str(RunLayout.of(root).checkpoints)
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
            layout = RunLayout.of(self.run_dir)
            ckpt = layout.last_checkpoint
            teacher = self.model.hparams.get("teacher_ckpt")
            seed = self.config[self.subcommand].get("seed_everything")
            atomic_write_json(layout.provenance, run_provenance(seed, str(ckpt) if ckpt.is_file() else None, teacher))
            atomic_write_json(layout.metrics, values)
        close_wandb_runs(self.trainer, self.run_dir)


def _as_list(value: Any) -> list:
    if value in (None, True, False):
        return []
    return list(value) if isinstance(value, list) else [value]
