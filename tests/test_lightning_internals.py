"""Every Lightning internal kd-ls touches (kd_ls/lightning/internals.py) still exists where it
is reached for: a Lightning upgrade that moves one fails here, loudly, with its name."""

import ctypes
import os

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger

from kd_ls.lightning import internals


def test_manual_optimization_step_counter_moves_global_step(tmp_path):
    trainer = pl.Trainer(default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    assert hasattr(progress, "increment_by"), "Lightning moved the manual-optimization step counter"
    before = progress.total.completed
    internals.count_optimizer_steps(trainer, 3)
    # global_step of a manual-optimization fit reads this counter (checked end to end by
    # tests/test_steps_per_call.py's global_step assertions).
    assert progress.total.completed - before == 3


def test_wandb_logger_private_state(tmp_path):
    logger = WandbLogger(save_dir=str(tmp_path), offline=False)
    for name in ("_experiment", "_offline", "_wandb_init"):
        assert hasattr(logger, name), f"WandbLogger no longer has {name}"
    assert internals.wandb_run_if_started(logger) is None
    assert not internals.wandb_is_offline(logger)
    internals.switch_wandb_offline(logger)
    assert internals.wandb_is_offline(logger) and logger._wandb_init["mode"] == "offline"
    sentinel = object()
    internals.set_wandb_run(logger, sentinel)
    assert logger.experiment is sentinel


def test_cuda_check_is_restored_only_without_nvml(monkeypatch):
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    internals.restore_default_cuda_check()
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        has_nvml = True
    except OSError:
        has_nvml = False
    assert (os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1") == has_nvml


def test_the_checkpoint_connector_dumps_the_training_state(tmp_path):
    trainer = pl.Trainer(default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    assert hasattr(trainer, "_checkpoint_connector"), "Lightning moved the Trainer's checkpoint connector"
    assert callable(getattr(trainer._checkpoint_connector, "dump_checkpoint", None)), \
        "Lightning's checkpoint connector has no dump_checkpoint"
