"""How closely a student follows its teacher: top-1 agreement and the distillation KL."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_pair(student_logits: Tensor, teacher_logits: Tensor) -> None:
    if student_logits.shape != teacher_logits.shape or student_logits.ndim != 2:
        raise ValueError(
            "student and teacher logits must both be (N, K) with equal shapes, got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )


def agreement(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Fraction of examples on which student and teacher predict the same top-1 class (float64)."""
    _check_pair(student_logits, teacher_logits)
    same = student_logits.argmax(dim=1) == teacher_logits.argmax(dim=1)
    return same.to(torch.float64).mean()


def kl_divergence(teacher_logits: Tensor, student_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """KL(softmax(t / T) || softmax(s / T)), summed over classes and averaged over the batch.

    The same `batchmean` KL as the distillation loss (science.md §3), without its T^2 factor.
    Computed from log-probabilities in float64, so teacher probabilities that underflow to 0
    contribute 0 instead of 0 * log 0 = NaN.
    """
    _check_pair(student_logits, teacher_logits)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    log_p = F.log_softmax(teacher_logits.to(torch.float64) / temperature, dim=1)
    log_q = F.log_softmax(student_logits.to(torch.float64) / temperature, dim=1)
    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
