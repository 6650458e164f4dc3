"""Label-smoothing cross-entropy in its four conventions, and the distillation losses by name.

Every formula follows kd_ls/science.md §2-3. Targets are built explicitly (not via
PyTorch's `label_smoothing=`) so that the tests can compare against PyTorch independently.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The names and the checks of their settings live in loss_options.py (torch-free: a study is
# checked before torch loads); they are re-exported here, where the losses are.
from kd_ls.loss_options import (  # noqa: F401
    CONVENTIONS,
    LOSS_OPTIONS,
    LOSSES,
    Convention,
    check_convention,
    check_loss,
    check_range,
    check_temperature,
)


def smoothed_targets(
    labels: Tensor, num_classes: int, alpha: float | Tensor, convention: str = "uniform"
) -> Tensor:
    """Target distributions (N, K) for the `uniform` or `others` convention.

    `alpha` may be a per-sample tensor (N,), which is how `adaptive` reuses the `others` form.
    """
    onehot = F.one_hot(labels, num_classes).to(torch.float32)
    alpha = torch.as_tensor(alpha, dtype=torch.float32, device=labels.device)
    if alpha.ndim == 1:
        alpha = alpha[:, None]
    if convention == "uniform":
        return (1 - alpha) * onehot + alpha / num_classes
    if convention == "others":
        return (1 - alpha) * onehot + alpha / (num_classes - 1) * (1 - onehot)
    raise ValueError(f"convention must be 'uniform' or 'others' for fixed targets; got {convention!r}")


def masked_mean(per_row: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Mean of `per_row` over the rows where `mask` is 1 (all rows without a mask)."""
    if mask is None:
        return per_row.mean()
    # Masked rows add nothing; an all-masked batch gives 0, not NaN.
    return (per_row * mask).sum() / mask.sum().clamp_min(1)


def soft_cross_entropy(logits: Tensor, targets: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Mean over unmasked rows of -sum_k targets_k * log_softmax(logits)_k."""
    return masked_mean(-(targets * F.log_softmax(logits.float(), dim=-1)).sum(-1), mask)


def label_smoothing_cross_entropy(
    logits: Tensor,
    labels: Tensor,
    alpha: float = 0.0,
    convention: str = "uniform",
    ignore_index: int = -100,
) -> Tensor:
    """Cross-entropy against label-smoothed targets (stateless conventions).

    `uniform`: (1-alpha)*onehot + alpha/K. `others`: true class 1-alpha, others alpha/(K-1).
    `adaptive`: the `others` form with eps_i = alpha * p_y(x_i) from the model's own softmax
    (no gradient through eps), alpha playing fast-reid's beta. Rows whose label equals
    `ignore_index` contribute nothing. `online` needs state: use LabelSmoothingLoss.
    """
    check_convention(convention)
    check_range("alpha", alpha, 0.0, 1.0, closed_high=False)
    if convention == "online":
        raise ValueError("convention 'online' keeps per-epoch state; use LabelSmoothingLoss")
    mask = labels != ignore_index
    safe_labels = torch.where(mask, labels, torch.zeros_like(labels))
    num_classes = logits.shape[-1]
    if convention == "adaptive":
        with torch.no_grad():
            p_true = F.softmax(logits.float(), -1).gather(1, safe_labels[:, None]).squeeze(1)
        targets = smoothed_targets(safe_labels, num_classes, alpha * p_true, "others")
    else:
        targets = smoothed_targets(safe_labels, num_classes, alpha, convention)
    return soft_cross_entropy(logits, targets, mask.float())


class LabelSmoothingLoss(nn.Module):
    """Label-smoothing loss module for all four conventions.

    `online` (Zhang et al. 2021): the soft target of class c is the mean softmax of the
    correctly classified training samples of class c in the previous epoch (uniform 1/K
    where none), mixed 50/50 with hard cross-entropy. Call `end_epoch()` after each training
    epoch to swap in the statistics gathered during it.
    """

    def __init__(
        self, num_classes: int, alpha: float = 0.0, convention: str = "uniform", ignore_index: int = -100
    ) -> None:
        super().__init__()
        check_convention(convention)
        check_range("alpha", alpha, 0.0, 1.0, closed_high=False)
        self.num_classes, self.alpha, self.convention, self.ignore_index = (
            num_classes, alpha, convention, ignore_index
        )
        if convention == "online":
            self.register_buffer("soft_targets", torch.full((num_classes, num_classes), 1.0 / num_classes))
            self.register_buffer("prob_sums", torch.zeros(num_classes, num_classes))
            self.register_buffer("counts", torch.zeros(num_classes))

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Loss for a batch; in `online` mode also accumulates this epoch's statistics."""
        if self.alpha == 0 and self.convention != "online":
            # Every fixed convention is plain cross-entropy at alpha = 0; one fused op is
            # ~12% of a small CPU step cheaper than building explicit targets.
            return F.cross_entropy(logits.float(), labels, ignore_index=self.ignore_index)
        if self.convention != "online":
            return label_smoothing_cross_entropy(logits, labels, self.alpha, self.convention, self.ignore_index)
        mask = labels != self.ignore_index
        safe_labels = torch.where(mask, labels, torch.zeros_like(labels))
        hard = F.cross_entropy(logits.float(), labels, ignore_index=self.ignore_index)
        soft = soft_cross_entropy(logits, self.soft_targets[safe_labels], mask.float())
        if self.training:
            self._accumulate(logits.detach(), safe_labels, mask)
        return 0.5 * hard + 0.5 * soft

    def _accumulate(self, logits: Tensor, labels: Tensor, mask: Tensor) -> None:
        probs = F.softmax(logits.float(), -1)
        correct = (probs.argmax(-1) == labels) & mask
        self.prob_sums.index_add_(0, labels[correct], probs[correct])
        self.counts.index_add_(0, labels[correct], torch.ones_like(labels[correct], dtype=torch.float32))

    def end_epoch(self) -> None:
        """Make this epoch's class-mean softmax the next epoch's soft targets (online only)."""
        if self.convention != "online":
            return
        seen = self.counts > 0
        self.soft_targets[seen] = self.prob_sums[seen] / self.counts[seen, None]
        self.soft_targets[~seen] = 1.0 / self.num_classes
        self.prob_sums.zero_()
        self.counts.zero_()


# ---- distillation ------------------------------------------------------------------------------

# Added to the standard deviation in LSKD's z-score, as in the authors' `normalize`.
LSKD_EPSILON = 1e-7


def kd_soft_term(student_logits: Tensor, teacher_logits: Tensor, temperature: float, soften_student: bool) -> Tensor:
    """Hinton's soft term T^2 * KL(softmax(t/T) || softmax(s/T)), batch mean (§3).

    With `soften_student=False` the student stays at temperature 1 and the T^2 factor is
    dropped: it exists to undo the 1/T^2 that softening the student puts on the gradients."""
    student_temperature = temperature if soften_student else 1.0
    teacher_probs = F.softmax(teacher_logits.float() / temperature, dim=-1)
    student_log_probs = F.log_softmax(student_logits.float() / student_temperature, dim=-1)
    kl = F.kl_div(student_log_probs, teacher_probs, reduction="batchmean")
    return kl * (temperature**2 if soften_student else 1.0)


def standardize(logits: Tensor) -> Tensor:
    """Z-score each row over the classes as Sun et al. do: (z - mean) / (std + 1e-7), with
    torch's default (unbiased, K - 1) standard deviation."""
    logits = logits.float()
    mean = logits.mean(dim=-1, keepdim=True)
    return (logits - mean) / (logits.std(dim=-1, keepdim=True) + LSKD_EPSILON)


def decoupled_terms(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor,
                    temperature: float) -> tuple[Tensor, Tensor]:
    """Per-sample TCKD and NCKD of Zhao et al. at temperature T (no T^2 factor), computed stably.

    TCKD = KL(b_teacher || b_student) over the binary split (true class, all others);
    NCKD = KL between the softmaxes over the K - 1 non-target classes. The target class is
    removed exactly (not pushed down by a constant) and every log-probability comes from a
    log-softmax, so both stay finite however large the logits are."""
    n, k = student_logits.shape
    target = F.one_hot(labels, k).bool()

    def split(logits: Tensor) -> tuple[Tensor, Tensor]:
        scaled = logits.float() / temperature
        rest = scaled[~target].view(n, k - 1)
        binary = torch.stack([scaled[target], torch.logsumexp(rest, dim=-1)], dim=-1)
        return F.log_softmax(binary, dim=-1), F.log_softmax(rest, dim=-1)

    student_binary, student_rest = split(student_logits)
    teacher_binary, teacher_rest = split(teacher_logits)
    tckd = F.kl_div(student_binary, teacher_binary, reduction="none", log_target=True).sum(-1)
    nckd = F.kl_div(student_rest, teacher_rest, reduction="none", log_target=True).sum(-1)
    return tckd, nckd


def dkd_soft_term(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, temperature: float,
                  ignore_index: int, dkd_alpha: float, dkd_beta: float) -> Tensor:
    """T^2 * (dkd_alpha * TCKD + dkd_beta * NCKD), mean over the rows with a label.

    DKD needs each sample's true class: rows labelled `ignore_index` contribute nothing."""
    mask = labels != ignore_index
    safe_labels = torch.where(mask, labels, torch.zeros_like(labels))
    tckd, nckd = decoupled_terms(student_logits, teacher_logits, safe_labels, temperature)
    return temperature**2 * masked_mean(dkd_alpha * tckd + dkd_beta * nckd, mask.float())


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    temperature: float = 4.0,
    beta: float = 0.9,
    soften_student: bool = True,
    ignore_index: int = -100,
    loss: str = "kd",
    soft_scale: float = 1.0,
    **options: float,
) -> Tensor:
    """(1 - beta) * CE(y, s) + beta * soft_scale * soft, the soft term named by `loss` (§3):

    - `kd` (Hinton et al.): T^2 * KL(softmax(t/T) || softmax(s/T)), batch mean; with
      `soften_student=False` the student stays at temperature 1 and T^2 is dropped (Müller).
    - `lskd` (Sun et al. 2024): the `kd` term on per-sample z-scored logits (`standardize`).
    - `dkd` (Zhao et al. 2022): T^2 * (dkd_alpha * TCKD + dkd_beta * NCKD), options
      `dkd_alpha` (default 1) and `dkd_beta` (default 8).
    `soft_scale` multiplies the soft term alone (a schedule such as DKD's warm-up). The papers
    add CE at weight 1: beta = 0.5 gives their loss times 1/2.
    """
    check_temperature(temperature)
    check_range("beta", beta, 0.0, 1.0, closed_high=True)
    settings = check_loss(loss, options, soften_student)
    if loss == "dkd":
        soft = dkd_soft_term(student_logits, teacher_logits, labels, temperature, ignore_index, **settings)
    elif loss == "lskd":
        soft = kd_soft_term(standardize(student_logits), standardize(teacher_logits), temperature, True)
    else:
        soft = kd_soft_term(student_logits, teacher_logits, temperature, soften_student)
    if beta == 1.0:
        return soft_scale * soft
    hard = F.cross_entropy(student_logits.float(), labels, ignore_index=ignore_index)
    return (1 - beta) * hard + beta * soft_scale * soft
