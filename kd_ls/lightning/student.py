"""The Student: distils from a frozen kd-ls teacher checkpoint, or trains alone (the baselines)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from kd_ls.evaluation import SplitOutputs, teacher_agreement_metrics
from kd_ls.lightning.checkpoint import load_network
from kd_ls.lightning.module import ClassifierModule
from kd_ls.lightning.teacher_cache import teacher_logit_cache
from kd_ls.loss_options import loss_settings
from kd_ls.losses import check_range, check_temperature, distillation_loss


class Student(ClassifierModule):
    """A student: distils from a frozen kd-ls teacher checkpoint, or trains alone.

    With `teacher_ckpt` it minimises (1-beta)*CE + beta*soft, the soft term named by `loss`
    (kd_ls.losses.distillation_loss; Hinton's T^2*KL(teacher_T || student_T) by default); without
    one it trains on the labels with the inherited `alpha`/`convention` (the baselines: student
    alone, student alone with LS).

    Args:
        teacher_ckpt: path to a kd-ls checkpoint (a Teacher's or Student's), or None.
        temperature: distillation temperature T > 0.
        beta: weight of the soft (distillation) term in [0, 1].
        soften_student: soften the student by T as well (False: only the teacher, Müller's
            variant; loss kd only).
        loss: the soft term: kd (Hinton et al. 2015), lskd (Sun et al. 2024: z-scored logits),
            dkd (Zhao et al. 2022: decoupled target and non-target terms). See kd_ls/science.md §3.
        dkd_alpha: weight of DKD's target-class term TCKD (loss dkd only; null = 1.0).
        dkd_beta: weight of DKD's non-target term NCKD (loss dkd only; null = 8.0).
        dkd_warmup_epochs: DKD's warm-up (loss dkd only; null = 0, none): the soft term is
            scaled by min(epoch / dkd_warmup_epochs, 1), epochs counted from 1 as in mdistiller
            (which uses 20 on CIFAR-100).
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
        loss: str = "kd",
        dkd_alpha: Optional[float] = None,
        dkd_beta: Optional[float] = None,
        dkd_warmup_epochs: Optional[int] = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        check_temperature(temperature)
        check_range("beta", beta, 0.0, 1.0, closed_high=True)
        # Options left at null are the loss's defaults; one given to a loss without it is refused.
        given = {"dkd_alpha": dkd_alpha, "dkd_beta": dkd_beta, "dkd_warmup_epochs": dkd_warmup_epochs}
        self.loss_options = loss_settings(loss, {k: v for k, v in given.items() if v is not None}, soften_student)
        self.soft_warmup_epochs = self.loss_options.pop("dkd_warmup_epochs", 0)
        if loss != "kd" and not teacher_ckpt:
            raise ValueError(f"model.loss={loss!r} needs model.teacher_ckpt: without a teacher the student "
                             "trains on the labels alone")
        self.teacher = load_network(teacher_ckpt, self.num_classes) if teacher_ckpt else None
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
        return distillation_loss(logits, teacher_logits, labels, hp.temperature, hp.beta, hp.soften_student,
                                 loss=hp.loss, soft_scale=self.soft_scale(), **self.loss_options)

    def soft_scale(self) -> float:
        """DKD's warm-up factor min(epoch / dkd_warmup_epochs, 1), epochs counted from 1; else 1."""
        warmup = self.soft_warmup_epochs
        return min((self.current_epoch + 1) / warmup, 1.0) if warmup else 1.0

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
