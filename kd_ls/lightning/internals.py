"""Every place kd-ls touches Lightning's (or its WandbLogger's) private state, in one file.

Written for pytorch-lightning 2.6 (and checked against 2.2-2.6). Each function names the
internal it uses and why no public API does the job; tests/test_lightning_internals.py fails
loudly if one of them moves in a Lightning upgrade.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger, WandbLogger

WRITTEN_FOR = "pytorch-lightning 2.6"


def restore_default_cuda_check() -> None:
    """Undo Lightning's PYTORCH_NVML_BASED_CUDA_CHECK=1 where no NVIDIA driver exists.

    Importing Lightning sets it so CUDA checks do not poison forked workers. Without a driver,
    the check then tries to load NVML on every torch.cuda.is_available() call, which AdamW makes
    at every step (0.1-0.4 ms, a tenth of a small model's CPU step). Without a driver there is
    no CUDA to poison, so PyTorch's default check is restored."""
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1":
        try:
            ctypes.CDLL("libnvidia-ml.so.1")
        except OSError:
            del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


def count_optimizer_steps(trainer: pl.Trainer, steps: int) -> None:
    """Advance `trainer.global_step` by `steps` optimizer steps taken without LightningOptimizer.

    Grouped steps call the torch optimizer directly; LightningOptimizer.step is what counts
    manual-optimization steps, through this progress counter (no public setter exists)."""
    trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress.increment_by(steps)


def wandb_run_if_started(logger: WandbLogger) -> Any:
    """The logger's wandb run if it was created, else None (`experiment` would create one)."""
    return logger._experiment


def set_wandb_run(logger: WandbLogger, run: Any) -> None:
    """Make `run` the logger's experiment (a stand-in when W&B cannot log at all)."""
    logger._experiment = run


def wandb_init_args(logger: WandbLogger) -> dict[str, Any]:
    """The arguments WandbLogger will pass to `wandb.init` (kept privately; changes take effect
    when the run is created)."""
    return logger._wandb_init


def switch_wandb_offline(logger: WandbLogger) -> None:
    """Make the next `experiment` access create an offline run (WandbLogger keeps its init
    arguments privately and has no public switch)."""
    logger._offline = True
    logger._wandb_init["mode"] = "offline"


def wandb_is_offline(logger: WandbLogger) -> bool:
    """Whether the logger was asked to log offline."""
    return bool(logger._offline)


def prepend_csv_rows(logger: CSVLogger, rows: list[dict[str, str]]) -> None:
    """Write `rows` (an earlier attempt's metrics.csv rows) ahead of everything `logger` logs.

    A CSVLogger deletes the metrics.csv it finds when it starts, so a resumed run would lose
    the epochs before its interruption, and it has no public way to append: its experiment
    writer keeps the rows it has not saved yet in `metrics`, and its next save() writes them
    below the header. Call before the first save (kd-ls: at on_train_start). Only rank 0
    writes metrics.csv; other ranks' experiment is a stand-in, so they do nothing."""
    if isinstance(getattr(logger.experiment, "metrics", None), list):
        logger.experiment.metrics[:0] = rows


def training_state(trainer: pl.Trainer) -> dict[str, Any]:
    """The whole training state as Trainer.save_checkpoint writes it (weights, optimizer, loops,
    callbacks' states). Lightning internal: Trainer.save_checkpoint's own
    `_checkpoint_connector.dump_checkpoint`; no public API returns the dict without writing it
    through Lightning's file writer (serialized in memory, copied into a temporary file in
    TMPDIR, then moved: half of a 3.5 MB save's CPU time)."""
    return trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
