"""Calibration of a classifier's softmax: ECE, MCE, reliability diagrams, NLL, temperature scaling.

Binning follows kd_ls/science.md §4: `n_bins` equal-width bins over [0, 1] on the top-label
confidence, bin b covering (b/n_bins, (b+1)/n_bins]; a confidence of exactly 1.0 lands in the last
bin and one of exactly 0 in the first. Some implementations drop conf == 1.0 into a hidden extra bin,
which hides exactly the saturated predictions of a teacher trained without label smoothing.
Scalar results are float64 0-dim tensors on the input's device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from kd_ls.metrics._common import check_rows


def _check_probs(probs: Tensor, labels: Tensor, n_bins: int) -> None:
    check_rows(probs, labels, name="probs")
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins!r}")


def _binned(probs: Tensor, labels: Tensor, n_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-bin count, sum of correctness and sum of confidence, all float64 (n_bins,)."""
    _check_probs(probs, labels, n_bins)
    confidence, predicted = probs.max(dim=1)
    confidence = confidence.to(torch.float64)
    correct = (predicted == labels).to(torch.float64)
    # ceil(c * B) - 1 makes the bins right-closed, so c == 1.0 maps to B - 1 (the last bin).
    index = (torch.ceil(confidence * n_bins) - 1).clamp_(0, n_bins - 1).long()
    zeros = torch.zeros(n_bins, dtype=torch.float64, device=probs.device)
    count = zeros.index_add(0, index, torch.ones_like(confidence))
    sum_correct = zeros.index_add(0, index, correct)
    sum_confidence = zeros.index_add(0, index, confidence)
    return count, sum_correct, sum_confidence


def calibration_errors(probs: Tensor, labels: Tensor, n_bins: int = 15) -> tuple[Tensor, Tensor]:
    """(ECE, MCE) from one binning of the top-label confidences.

    ECE = sum_b (n_b / N) |acc_b - conf_b|; MCE = max over non-empty bins of |acc_b - conf_b|."""
    count, sum_correct, sum_confidence = _binned(probs, labels, n_bins)
    gap = (sum_correct - sum_confidence).abs()
    # (n_b / N) |acc_b - conf_b| == |sum_correct_b - sum_confidence_b| / N, and empty bins add 0.
    filled = count > 0
    return gap.sum() / count.sum(), (gap[filled] / count[filled]).max()


def ece(probs: Tensor, labels: Tensor, n_bins: int = 15) -> Tensor:
    """Expected calibration error: sum_b (n_b / N) |acc_b - conf_b| over top-label confidence bins."""
    return calibration_errors(probs, labels, n_bins)[0]


def mce(probs: Tensor, labels: Tensor, n_bins: int = 15) -> Tensor:
    """Maximum calibration error: max over non-empty bins of |acc_b - conf_b|."""
    return calibration_errors(probs, labels, n_bins)[1]


def reliability_diagram(probs: Tensor, labels: Tensor, n_bins: int = 15) -> dict[str, Tensor]:
    """Per-bin statistics behind a reliability diagram.

    Returns float64 tensors of shape (n_bins,) on the input's device: `bin_lower`, `bin_upper`,
    `count`, `accuracy` and `confidence` (mean correctness / mean confidence in the bin; NaN for an
    empty bin, so that an empty bin can never be mistaken for a bin at 0% accuracy), plus the 0-dim
    `ece` computed from the same bins.
    """
    count, sum_correct, sum_confidence = _binned(probs, labels, n_bins)
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64, device=probs.device)
    safe = count.clamp_min(1.0)
    empty = count == 0
    nan = torch.tensor(math.nan, dtype=torch.float64, device=probs.device)
    return {
        "bin_lower": edges[:-1],
        "bin_upper": edges[1:],
        "count": count,
        "accuracy": torch.where(empty, nan, sum_correct / safe),
        "confidence": torch.where(empty, nan, sum_confidence / safe),
        "ece": (sum_correct - sum_confidence).abs().sum() / count.sum(),
    }


def nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of softmax(logits) against integer labels."""
    check_rows(logits, labels, name="logits")
    # Classes along dim 1 of a (1, K, N) view: the same sum, but PyTorch's CPU kernel runs 5x
    # faster than over a short last dimension (K = 10, N = 7,200: 0.14 ms instead of 0.7 ms).
    return F.cross_entropy(logits.to(torch.float64).t()[None], labels[None])


def fit_temperature(
    logits: Tensor,
    labels: Tensor,
    max_iter: int = 100,
    t_range: tuple[float, float] = (1e-2, 1e2),
    tol: float = 1e-12,
) -> float:
    """Temperature T* > 0 minimising the NLL of softmax(logits / T), as a Python float.

    The NLL is convex in beta = 1 / T (a log-sum-exp of functions linear in beta), so the
    derivative's sign brackets the unique minimum: the search is a safeguarded Newton iteration on
    beta inside [1 / t_range[1], 1 / t_range[0]], falling back to geometric bisection whenever a
    Newton step leaves the bracket. Full-batch and float64, hence deterministic. When the minimum
    lies outside `t_range` the nearer end is returned.
    """
    check_rows(logits, labels, name="logits")
    t_min, t_max = float(t_range[0]), float(t_range[1])
    if not 0 < t_min < t_max:
        raise ValueError(f"t_range must satisfy 0 < low < high, got {t_range!r}")
    z = logits.to(torch.float64)
    z_true = z.gather(1, labels.long()[:, None]).squeeze(1)

    def slope_curvature(beta: float) -> tuple[float, float]:
        p = torch.softmax(beta * z, dim=1)
        mean_z = (p * z).sum(dim=1)
        slope = (mean_z - z_true).mean()
        # Var_p(z) from centred values: E[z^2] - E[z]^2 cancels badly for confident rows.
        curvature = (p * (z - mean_z[:, None]).square()).sum(dim=1).mean()
        return float(slope), float(curvature)

    low, high = 1.0 / t_max, 1.0 / t_min
    if slope_curvature(low)[0] >= 0:
        return t_max
    if slope_curvature(high)[0] <= 0:
        return t_min
    beta = min(max(1.0, low), high)
    for _ in range(max_iter):
        slope, curvature = slope_curvature(beta)
        if slope > 0:
            high = beta
        else:
            low = beta
        step = beta - slope / curvature if curvature > 0 else math.nan
        if not low < step < high:
            step = math.sqrt(low * high)
        converged = abs(step - beta) <= tol * beta or high - low <= tol * low
        beta = step
        if converged:
            break
    return 1.0 / beta
