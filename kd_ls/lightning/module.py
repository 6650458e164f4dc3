"""The classifier LightningModule every kd-ls run trains, and the Teacher built on it.

ClassifierModule holds the network from the registry, the label-smoothed objective, the
optimizer and schedule, and the per-epoch metrics. Metrics are accumulated on the device and
turned into numbers once per epoch, so no step waits on the host for logging.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor

from kd_ls.data.base import ArrayDataModule
from kd_ls.evaluation import (
    SplitOutputs,
    calibration_after_scaling,
    classification_metrics,
    cluster_metrics,
    datamodule_outputs,
    smoothness_metrics,
)
from kd_ls.io import atomic_save_tensor
from kd_ls.layout import RunLayout
from kd_ls.lightning import grouped_steps
from kd_ls.lightning.internals import restore_default_cuda_check
from kd_ls.lightning.optim import build_optimizer, check_optimization, lr_factor_fn
from kd_ls.losses import LabelSmoothingLoss
from kd_ls.models import create_model

TRAIN_METRICS = ("acc", "nll", "ece")

restore_default_cuda_check()


class ClassifierModule(pl.LightningModule):
    """A classifier trained with (optionally) label-smoothed cross-entropy.

    Args:
        net: model name in the kd_ls.models registry (e.g. conv1d, mlp, resnet56, tv:resnet18).
        net_kwargs: extra arguments for the model builder (e.g. {"widths": [800, 800]}).
        num_classes: number of classes (linked from the data module by the CLI).
        input_shape: shape of one input (linked from the data module by the CLI).
        alpha: label-smoothing amount in [0, 1); 0 is plain cross-entropy.
        convention: label-smoothing convention: uniform, others, adaptive or online.
        optimizer: sgd (with momentum) or adamw.
        lr: peak learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum for SGD.
        weight_decay: decoupled (AdamW) or L2 (SGD) weight decay.
        schedule: cosine, multistep or constant learning-rate schedule, stepped per batch.
        milestones: multistep milestones as fractions of the whole run.
        gamma: multistep decay factor.
        warmup_epochs: linear warm-up length in epochs (may be fractional).
        report_temperatures: temperatures at which test metrics report the smoothness index.
        measure_clusters: compute cluster-tightness metrics on the test split.
        channels_last: NHWC memory layout for image models (faster convolutions on GPUs).
        compile: torch.compile the network in place (state-dict keys unchanged).
        steps_per_call: optimizer steps per Lightning training_step. Above 1 the kd-ls data
            module (linked by the CLI, or given it at setup when built without) hands over
            that many batches at once and the module
            steps through them with manual optimization, so Lightning's per-call cost is paid once per group (Keras's
            steps_per_execution). Results are the same as with 1; global_step, max_steps and
            the schedule count optimizer steps, but the progress bar, log_every_n_steps,
            val_check_interval and limit_train_batches count calls, and Trainer gradient
            clipping or accumulation is not available.
    """

    def __init__(
        self,
        net: str = "mlp",
        net_kwargs: Optional[dict[str, Any]] = None,
        num_classes: int = 10,
        input_shape: Sequence[int] = (1, 40),
        alpha: float = 0.0,
        convention: str = "uniform",
        optimizer: str = "sgd",
        lr: float = 0.1,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 5e-4,
        schedule: str = "cosine",
        milestones: Sequence[float] = (0.5, 0.75),
        gamma: float = 0.1,
        warmup_epochs: float = 0.0,
        report_temperatures: Sequence[float] = (1.0, 2.0, 4.0, 8.0),
        measure_clusters: bool = True,
        channels_last: bool = False,
        compile: bool = False,
        steps_per_call: int = 1,
    ) -> None:
        super().__init__()
        check_optimization(optimizer, lr, momentum, weight_decay, schedule, milestones, gamma, warmup_epochs)
        if steps_per_call < 1:
            raise ValueError(f"model.steps_per_call must be >= 1, got {steps_per_call!r}")
        self.steps_per_call = steps_per_call
        self.automatic_optimization = steps_per_call == 1
        self.net = create_model(net, num_classes, tuple(input_shape), **(net_kwargs or {}))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        if compile:
            self.net.compile()
        self.criterion = LabelSmoothingLoss(num_classes, alpha, convention)
        self.num_classes = num_classes
        # Called here, it records every argument of this class and of the subclass whose
        # __init__ called it, defaults included (Lightning walks the __init__ frames).
        self.save_hyperparameters()
        self._epoch: dict[str, list[tuple[Tensor, ...]]] = {}
        self._loss_sum: Optional[Tensor] = None

    # ---- forward and the training objective --------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Logits of the trained network."""
        return self.net(self.layout(x))

    def layout(self, x: Tensor) -> Tensor:
        """Inputs in the network's memory layout (channels_last applies to 4-D images only)."""
        return x.contiguous(memory_format=self.memory_format) if x.ndim == 4 else x

    def objective(self, logits: Tensor, labels: Tensor, teacher_logits: Optional[Tensor] = None) -> Tensor:
        """The training loss; the Student overrides this to distil from `teacher_logits`."""
        return self.criterion(logits, labels)

    def train_teacher_logits(self, batch: tuple[Tensor, ...]) -> Optional[Tensor]:
        """Teacher logits for a training batch (None: no teacher)."""
        return None

    def training_step(self, batch: Any, batch_idx: int) -> Optional[Tensor]:
        """The batch's loss for Lightning to step on; with steps_per_call > 1, one optimizer
        step here per batch of the group the data module handed over (grouped_steps.py)."""
        if self.automatic_optimization:
            return self.batch_loss(batch)
        grouped_steps.run_group(self, batch, self.batch_loss, self._direct_steps)
        return None

    def batch_loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        """The training loss of one batch; epoch metrics are accumulated on the device."""
        logits = self(batch[0])
        loss = self.objective(logits, batch[1], self.train_teacher_logits(batch))
        self._remember("train", logits.detach(), batch[1])
        self._loss_sum = loss.detach() * batch[1].shape[0] + (0 if self._loss_sum is None else self._loss_sum)
        return loss

    def setup(self, stage: str) -> None:
        """Check that the data module groups batches as this module steps through them."""
        datamodule = self.trainer.datamodule
        if self.steps_per_call > 1 and not isinstance(datamodule, ArrayDataModule):
            raise ValueError(f"model.steps_per_call={self.steps_per_call} needs a kd-ls data module "
                             f"(kd_ls.data); got {type(datamodule).__name__}; set model.steps_per_call=1")
        data_steps = getattr(datamodule, "steps_per_call", 1)
        if data_steps == 1 and self.steps_per_call > 1:
            # Built in Python without the CLI's link: the model owns the setting, so the data
            # module takes it (its loaders are built after this hook). Left at 1, each call would
            # get one batch and pay Lightning's per-call cost every step (about 25% on a small MLP).
            datamodule.steps_per_call = self.steps_per_call
        elif data_steps != self.steps_per_call:
            raise ValueError(f"data.steps_per_call={data_steps} groups batches, but model.steps_per_call="
                             f"{self.steps_per_call}; set model.steps_per_call only (the CLI links it to data)")
        self._direct_steps = grouped_steps.steps_directly(self.trainer)

    def on_train_epoch_end(self) -> None:
        """Log train metrics; stop the run on a non-finite loss; advance online LS."""
        self.raise_if_diverged()
        n = sum(y.shape[0] for _, y in self._epoch.get("train", []))
        loss = (self._loss_sum / max(n, 1)).item() if self._loss_sum is not None else float("nan")
        self._loss_sum = None
        train = classification_metrics(*self._gather("train"))
        # The train split logs loss, acc, NLL and ECE (val and test log every metric): each key
        # costs Lightning's self.log about 0.3 ms, a tenth of a small model's epoch overhead.
        self._log_split("train", {"loss": loss, **{k: train[k] for k in TRAIN_METRICS}})
        self.criterion.end_epoch()

    def raise_if_diverged(self) -> None:
        """Stop the run with a FloatingPointError if this epoch's training loss is NaN/Inf.

        Checked once per epoch (one host sync), before validation and at the epoch's end."""
        if self._loss_sum is not None and not torch.isfinite(self._loss_sum).item():
            raise FloatingPointError(f"training loss became {self._loss_sum.item()} in epoch {self.current_epoch}")

    def on_validation_epoch_start(self) -> None:
        """Lightning validates before on_train_epoch_end: catch divergence before that."""
        self.raise_if_diverged()

    # ---- evaluation ---------------------------------------------------------------------------
    def eval_step(self, batch: tuple[Tensor, ...], split: str) -> None:
        """Keep logits, labels and penultimate features of an eval batch."""
        features = self.net.forward_features(self.layout(batch[0]))
        logits = self.net.get_classifier()(features)
        self._remember(split, logits.float(), batch[1], features.float(), *self.extra_eval_outputs(batch))

    def extra_eval_outputs(self, batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Further per-sample tensors an eval epoch needs (the Student adds teacher logits)."""
        return ()

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        """Collect outputs for the val epoch."""
        self.eval_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        """Collect outputs for the test epoch."""
        self.eval_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        """Log val metrics (skipped in the sanity check so they never reach metrics.json)."""
        self._finish_eval("val", log=not self.trainer.sanity_checking)

    def on_test_epoch_end(self) -> None:
        """Log test metrics, including the role-specific ones of `test_metrics`."""
        self._finish_eval("test", log=True)

    def _finish_eval(self, split: str, log: bool) -> None:
        logits, labels, features, *extra = self._gather(split)
        if not log:
            return
        out = SplitOutputs(logits, labels, features)
        values = {"loss": self.objective(logits, labels, *extra[:1]).item()}
        values.update(classification_metrics(logits, labels))
        if split == "test":
            values.update(self.test_metrics(out, extra))
        self._log_split(split, values)

    def test_metrics(self, test: SplitOutputs, extra: list[Tensor]) -> dict[str, float]:
        """Metrics only the test split reports: cluster tightness, and what subclasses add."""
        return cluster_metrics(test) if self.hparams.get("measure_clusters", True) else {}

    def val_outputs(self) -> SplitOutputs:
        """The current network's outputs on the whole val split (all ranks), computed afresh."""
        out = datamodule_outputs(self.net, self.trainer.datamodule, "val", self.device, with_features=False)
        if self.trainer.world_size > 1:
            return SplitOutputs(gather_ragged(self, out.logits), gather_ragged(self, out.labels))
        return out

    # ---- per-epoch accumulation ------------------------------------------------------------------
    def _remember(self, split: str, *tensors: Tensor) -> None:
        self._epoch.setdefault(split, []).append(tensors)

    def _gather(self, split: str) -> list[Tensor]:
        parts = self._epoch.pop(split, [])
        tensors = [torch.cat(column) for column in zip(*parts)]
        if self.trainer is not None and self.trainer.world_size > 1:
            tensors = [gather_ragged(self, t) for t in tensors]
        return tensors

    def _log_split(self, split: str, values: dict[str, float]) -> None:
        # Every rank holds the same gathered values: syncing them is exact and quiets Lightning.
        distributed = self.trainer.world_size > 1
        for name, value in values.items():
            self.log(f"{split}/{name}", value, prog_bar=name == "acc" or (split == "train" and name == "loss"),
                     sync_dist=distributed)

    # ---- optimisation -------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        """The configured optimizer with a per-step schedule (warm-up, then cosine/multistep)."""
        hp = self.hparams
        opt = build_optimizer(self.net.parameters(), hp)
        total = max(1, grouped_steps.total_optimizer_steps(self.trainer, self.steps_per_call))
        warmup = int(hp.warmup_epochs * total / max(1, self.trainer.max_epochs or 1))
        if warmup > total:
            raise ValueError(f"model.warmup_epochs={hp.warmup_epochs:g} is longer than the run "
                             f"(trainer.max_epochs={self.trainer.max_epochs})")
        schedule = lr_factor_fn(hp.schedule, total, warmup, hp.milestones, hp.gamma)
        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def gather_ragged(module: pl.LightningModule, t: Tensor) -> Tensor:
    """all_gather tensors whose first dimension differs by rank (padded, then trimmed)."""
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = module.all_gather(n).flatten().tolist()
    padded = torch.zeros((max(sizes), *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    gathered = module.all_gather(padded)
    return torch.cat([gathered[r, : sizes[r]] for r in range(len(sizes))])


class Teacher(ClassifierModule):
    """A teacher: trains with the chosen label-smoothing convention and alpha (0 = plain CE).

    Its test metrics add ECE after temperature scaling fitted on the val split, the fitted
    temperature, and Müller's smoothness index at each of `report_temperatures`.
    """

    def test_metrics(self, test: SplitOutputs, extra: list[Tensor]) -> dict[str, float]:
        """Cluster tightness, calibration after temperature scaling, smoothness indices."""
        values = super().test_metrics(test, extra)
        values.update(calibration_after_scaling(test, self.val_outputs()))
        values.update(smoothness_metrics(test, self.hparams.report_temperatures))
        if self.trainer.is_global_zero:
            # Reports derive per-T numbers (the smoothness index at any temperature) from these
            # logits, so adding a temperature to a study never retrains its teachers.
            path = RunLayout.of(self.trainer.default_root_dir).test_outputs
            atomic_save_tensor(path, {"logits": test.logits.cpu(), "labels": test.labels.cpu()})
        return values
