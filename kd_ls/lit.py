"""Lightning modules: a classifier trained with label smoothing (Teacher), and one that can
distil from a frozen kd-ls checkpoint (Student).

Both share ClassifierModule: the network from the registry, the optimizer and schedule,
and the per-epoch metrics. Metrics are accumulated on the device and turned into numbers
once per epoch, so no step waits on the host for logging.
"""

from __future__ import annotations

import ctypes
import math
import os
import pickle
from typing import Any, Optional, Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies import SingleDeviceStrategy
from torch import Tensor, nn

from kd_ls.data.base import ArrayDataModule
from kd_ls.evaluation import (
    SplitOutputs,
    calibration_after_scaling,
    classification_metrics,
    cluster_metrics,
    datamodule_outputs,
    smoothness_metrics,
    teacher_agreement_metrics,
)
from kd_ls.losses import LabelSmoothingLoss, check_range, check_temperature, distillation_loss
from kd_ls.models import create_model

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "multistep", "constant")
TRAIN_METRICS = ("acc", "nll", "ece")

# Importing Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 so that CUDA checks do not poison
# forked workers. Where no NVIDIA driver is installed, that check then tries to load NVML on
# every torch.cuda.is_available() call, which Adam/AdamW make at every step (about 0.1 ms,
# a tenth of a small model's CPU step). Without a driver there is no CUDA to poison, so the
# default check is restored.
if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1":
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


def check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    """Raise a one-line ValueError unless value is one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


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
            module hands over that many batches at once and the module steps through them with
            manual optimization, so Lightning's per-call cost is paid once per group (Keras's
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
        check_choice("model.optimizer", optimizer, OPTIMIZERS)
        check_choice("model.schedule", schedule, SCHEDULES)
        if lr <= 0:
            raise ValueError(f"model.lr must be > 0, got {lr!r}")
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

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Optional[Tensor]:
        """The batch's loss for Lightning to step on; with steps_per_call > 1, one optimizer
        step here per batch_size slice of a group of batches."""
        if self.automatic_optimization:
            return self.batch_loss(batch)
        # Direct: the torch optimizer and loss.backward(), as a plain loop. Otherwise Lightning's
        # wrapper and manual_backward (DDP gradient sync, loss scaling, per-step callback hooks).
        optimizer = self.optimizers().optimizer if self._direct_steps else self.optimizers()
        backward = Tensor.backward if self._direct_steps else self.manual_backward
        scheduler = self.lr_schedulers()
        parts = list(zip(*(t.split(self.trainer.datamodule.batch_size) for t in batch)))
        if self.trainer.max_steps != -1:
            parts = parts[: self.trainer.max_steps - self.trainer.global_step]
        for part in parts:
            loss = self.batch_loss(part)
            optimizer.zero_grad(set_to_none=True)
            backward(loss)
            optimizer.step()
            scheduler.step()
        if self._direct_steps:
            # LightningOptimizer.step is what counts manual steps (global_step); bypassed above.
            self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress.increment_by(len(parts))
        return None

    def batch_loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        """The training loss of one batch; epoch metrics are accumulated on the device."""
        logits = self(batch[0])
        loss = self.objective(logits, batch[1], self.train_teacher_logits(batch))
        self._remember("train", logits.detach(), batch[1])
        self._loss_sum = loss.detach() * batch[1].shape[0] + (0 if self._loss_sum is None else self._loss_sum)
        return loss

    def setup(self, stage: str) -> None:
        """Check what fused steps need and choose how they step.

        On one device without a loss scaler they call the torch optimizer and backward
        directly, as a plain loop does; under DDP (gradient sync) or 16-mixed (loss scaling)
        they go through Lightning's manual_backward and optimizer wrapper, which also run the
        per-step callback hooks."""
        datamodule = self.trainer.datamodule
        if self.steps_per_call > 1 and not isinstance(datamodule, ArrayDataModule):
            raise ValueError(f"model.steps_per_call={self.steps_per_call} needs a kd-ls data module "
                             f"(kd_ls.data); got {type(datamodule).__name__}; set model.steps_per_call=1")
        self._direct_steps = (isinstance(self.trainer.strategy, SingleDeviceStrategy)
                              and getattr(self.trainer.precision_plugin, "scaler", None) is None)

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
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(self.net.parameters(), lr=hp.lr, momentum=hp.momentum,
                                  nesterov=hp.nesterov and hp.momentum > 0, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.AdamW(self.net.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = max(1, self.total_optimizer_steps())
        warmup = int(hp.warmup_epochs * total / max(1, self.trainer.max_epochs or 1))
        schedule = lr_factor_fn(hp.schedule, total, warmup, hp.milestones, hp.gamma)
        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def total_optimizer_steps(self) -> int:
        """Optimizer steps of the whole fit, which the schedule spans."""
        calls = self.trainer.estimated_stepping_batches  # also loads the data: num_training_batches
        if self.automatic_optimization:
            return int(calls)
        # Lightning counts training_step calls (after limit_train_batches); each takes up to
        # steps_per_call optimizer steps.
        trainer = self.trainer
        batches = trainer.datamodule.train_dataloader().num_batches
        per_epoch = min(batches, trainer.num_training_batches * self.steps_per_call)
        total = per_epoch * trainer.max_epochs if trainer.max_epochs not in (None, -1) else float("inf")
        return int(min(total, trainer.max_steps if trainer.max_steps != -1 else float("inf")))

def lr_factor_fn(schedule: str, total: int, warmup: int, milestones: Sequence[float], gamma: float):
    """Multiplier of the peak learning rate at each step."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if schedule == "multistep":
            return gamma ** sum(step >= m * total for m in milestones)
        return 1.0

    return factor


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
        return values


def read_checkpoint(path: str, field: str = "model.teacher_ckpt") -> dict[str, Any]:
    """A kd-ls checkpoint (memory-mapped: weights are read when used); errors name `field`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{field}: no checkpoint at '{path}'")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{field}: '{path}' is not a readable torch checkpoint ({err})") from None
    hp = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    if "net" not in hp or "num_classes" not in hp:
        raise ValueError(f"{field}: '{path}' is not a kd-ls checkpoint (no 'net' hyper-parameter)")
    return ckpt


def load_teacher(path: str, num_classes: int, field: str = "model.teacher_ckpt") -> nn.Module:
    """A frozen network from a kd-ls checkpoint, checked to predict `num_classes` classes."""
    ckpt = read_checkpoint(path, field)
    hp = ckpt["hyper_parameters"]
    if hp["num_classes"] != num_classes:
        raise ValueError(f"{field}: the teacher predicts {hp['num_classes']} classes but the student's data has "
                         f"{num_classes}")
    # Building the teacher must not consume the global RNG: the student's initialisation
    # and data order have to be the same whichever teacher it learns from (paired design).
    with torch.random.fork_rng(devices=[]):
        net = create_model(hp["net"], hp["num_classes"], tuple(hp["input_shape"]), **(hp.get("net_kwargs") or {}))
    net.load_state_dict({k[4:]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")})
    net.requires_grad_(False)
    return net.eval()


class Student(ClassifierModule):
    """A student: distils from a frozen kd-ls teacher checkpoint, or trains alone.

    With `teacher_ckpt` it minimises (1-beta)*CE + beta*T^2*KL(teacher_T || student_T); without
    one it trains on the labels with the inherited `alpha`/`convention` (the baselines: student
    alone, student alone with LS).

    Args:
        teacher_ckpt: path to a kd-ls checkpoint (a Teacher's or Student's), or None.
        temperature: distillation temperature T > 0.
        beta: weight of the soft (distillation) term in [0, 1].
        soften_student: soften the student by T as well (False: only the teacher, Müller's variant).
        teacher_cache: compute the teacher's logits for every training sample and every
            augmentation view once (shared by all students of that teacher through a file in
            its run folder) and look them up instead of running the teacher each step.
        *args, **kwargs: ClassifierModule arguments.
    """

    def __init__(
        self,
        *args,
        teacher_ckpt: Optional[str] = None,
        temperature: float = 4.0,
        beta: float = 0.9,
        soften_student: bool = True,
        teacher_cache: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        check_temperature(temperature)
        check_range("beta", beta, 0.0, 1.0, closed_high=True)
        self.teacher = load_teacher(teacher_ckpt, self.num_classes) if teacher_ckpt else None
        if self.teacher is not None and self.memory_format == torch.channels_last:
            self.teacher.to(memory_format=torch.channels_last)
        self.logit_cache: Optional[Tensor] = None
        # The teacher's weights live in its own checkpoint; the student's file stays small.
        self.strict_loading = False

    def train(self, mode: bool = True) -> "Student":
        """Switch the student's mode; the teacher always stays in eval mode."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def teacher_logits(self, batch: tuple[Tensor, ...]) -> Tensor:
        """The frozen teacher's logits for the batch's inputs."""
        with torch.no_grad():
            return self.teacher(self.layout(batch[0])).float()

    def train_teacher_logits(self, batch: tuple[Tensor, ...]) -> Optional[Tensor]:
        """Cached logits of each sample's view when the cache is on, else the teacher's output."""
        if self.teacher is None:
            return None
        if self.logit_cache is not None:
            return self.logit_cache[batch[2], batch[3]]
        return self.teacher_logits(batch)

    def on_fit_start(self) -> None:
        """Load or build the teacher-logit cache when asked for."""
        if self.teacher is not None and self.hparams.teacher_cache:
            self.logit_cache = teacher_logit_cache(self.teacher, self.trainer.datamodule, self.hparams.teacher_ckpt)

    def objective(self, logits: Tensor, labels: Tensor, teacher_logits: Optional[Tensor] = None) -> Tensor:
        """Distillation loss with a teacher, the inherited LS loss without one."""
        if teacher_logits is None:
            return super().objective(logits, labels)
        hp = self.hparams
        return distillation_loss(logits, teacher_logits, labels, hp.temperature, hp.beta, hp.soften_student)

    def extra_eval_outputs(self, batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Teacher logits, for the eval loss and agreement metrics."""
        return () if self.teacher is None else (self.teacher_logits(batch),)

    def test_metrics(self, test: SplitOutputs, extra: list[Tensor]) -> dict[str, float]:
        """Cluster tightness plus agreement and KL with the teacher."""
        values = super().test_metrics(test, extra)
        if extra:
            values.update(teacher_agreement_metrics(test.logits, extra[0]))
        return values

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leave the teacher's weights out of the student's checkpoint."""
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("teacher.")}


@torch.no_grad()
def compute_logit_cache(teacher: nn.Module, dm: Any) -> Tensor:
    """Teacher logits (N_train, V, K) for every training sample under each of the V views."""
    x, _ = dm.splits["train"]
    device = next(teacher.parameters()).device
    views = []
    for view in range(dm.num_views):
        chunks = [teacher(dm.view_inputs(x[i : i + dm.eval_batch_size].to(device), view)).float()
                  for i in range(0, x.shape[0], dm.eval_batch_size)]
        views.append(torch.cat(chunks))
    return torch.stack(views, dim=1)


def teacher_logit_cache(teacher: nn.Module, dm: Any, teacher_ckpt: str) -> Tensor:
    """The cache for this teacher and training split, shared through the teacher's run folder.

    Its file is named by the training inputs, the number of views and the checkpoint's SHA-256,
    so a teacher retrained into the same folder never reuses the old teacher's logits."""
    from kd_ls.io import atomic_save_tensor, sha256_file, tensor_fingerprint

    key = tensor_fingerprint(dm.splits["train"][0], dm.num_views, sha256_file(teacher_ckpt))
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(teacher_ckpt))), "logit_cache", f"{key}.pt")
    device = next(teacher.parameters()).device
    if os.path.exists(path):
        try:
            return torch.load(path, map_location=device)
        except Exception:  # noqa: BLE001 - a damaged cache file is rebuilt, never trusted
            pass
    cache = compute_logit_cache(teacher, dm)
    atomic_save_tensor(path, cache)
    return cache
