"""What a run measures on a split: from (logits, features, labels) to a flat dict of numbers.

Shared by the Lightning modules (at the end of every val/test epoch), `kd-ls analyze`
and the study, so every place reports the same quantities computed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kd_ls import metrics


@dataclass
class SplitOutputs:
    """A model's outputs on one split, in sample order."""

    logits: Tensor
    labels: Tensor
    features: Optional[Tensor] = None


@torch.no_grad()
def collect_outputs(
    net: nn.Module, batches: Iterable, transform: Callable = lambda b: b, with_features: bool = True
) -> SplitOutputs:
    """Run `net` in eval mode over batches of (x, y, ...) and gather logits, labels, features."""
    was_training = net.training
    net.eval()
    logits, labels, features = [], [], []
    for batch in batches:
        x, y = transform(batch)[:2]
        if with_features:
            h = net.forward_features(x)
            features.append(h.float())
            logits.append(net.get_classifier()(h).float())
        else:
            logits.append(net(x).float())
        labels.append(y)
    net.train(was_training)
    return SplitOutputs(torch.cat(logits), torch.cat(labels), torch.cat(features) if features else None)


def datamodule_outputs(net: nn.Module, dm: Any, split: str, device: torch.device,
                       with_features: bool = True) -> SplitOutputs:
    """`net`'s outputs on a kd-ls data module's split, batched and normalised as in evaluation."""
    return collect_outputs(net, dm.loader(split), lambda b: dm.prepare_batch(tuple(t.to(device) for t in b)),
                           with_features)


def classification_metrics(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """Top-1 (and top-5 when K > 5) accuracy, NLL, ECE and MCE with 15 bins.

    Top-5 counts a sample when fewer than 5 classes score strictly above its label. Runs at
    every training epoch's end, so it is written for speed: one host sync, and the softmax
    taken over dim 0 of the transpose (PyTorch's CPU softmax is 10x slower over a short last
    dimension)."""
    logits = logits.float()
    probs = F.softmax(logits.t(), 0).t()
    values = {
        "acc": (logits.argmax(-1) == labels).double().mean(),
        "nll": metrics.nll(logits, labels),
        **dict(zip(("ece", "mce"), metrics.calibration_errors(probs, labels))),
    }
    if logits.shape[-1] > 5:
        higher = (logits > logits.gather(1, labels[:, None])).sum(-1)
        values["acc5"] = (higher < 5).double().mean()
    return dict(zip(values, torch.stack(list(values.values())).tolist()))


def calibration_after_scaling(test: SplitOutputs, val: SplitOutputs) -> dict[str, float]:
    """Temperature T* fitted by NLL on the val split, and test ECE/NLL after dividing by it."""
    t_star = metrics.fit_temperature(val.logits, val.labels)
    scaled = test.logits / t_star
    return {
        "ts_temperature": t_star,
        "ece_ts": metrics.ece(F.softmax(scaled, -1), test.labels).item(),
        "nll_ts": metrics.nll(scaled, test.labels).item(),
    }


def smoothness_metrics(outputs: SplitOutputs, temperatures: Sequence[float]) -> dict[str, float]:
    """Müller's smoothness index of the model's softmax at each temperature."""
    return {
        f"smoothness_T{t:g}": metrics.smoothness_index(outputs.logits, outputs.labels, t).item()
        for t in temperatures
    }


def cluster_metrics(outputs: SplitOutputs) -> dict[str, float]:
    """Tightness of the penultimate class clusters (science.md §5) and softmax stability."""
    h, y = outputs.features, outputs.labels
    return {
        "r2": metrics.class_separation_r2(h, y).item(),
        "nc1": metrics.nc1(h, y).item(),
        "variance_ratio": metrics.variance_ratio(h, y).item(),
        "cdnv": metrics.cdnv(h, y).item(),
        "silhouette": metrics.silhouette_score(h, y).item(),
        "stability": metrics.stability(F.softmax(outputs.logits, -1), y).item(),
    }


def teacher_agreement_metrics(student_logits: Tensor, teacher_logits: Tensor) -> dict[str, float]:
    """Top-1 agreement with the teacher and KL(teacher || student) at T = 1."""
    return {
        "agreement": metrics.agreement(student_logits, teacher_logits).item(),
        "kl_teacher": metrics.kl_divergence(teacher_logits, student_logits).item(),
    }
