"""The optimizers and learning-rate schedules a recipe can name, and their one validation."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from kd_ls.names import did_you_mean

if TYPE_CHECKING:  # torch loads with the optimizer, not with the checks a study file runs
    import torch

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "multistep", "constant")


def check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    """Raise a one-line ValueError unless value is one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}" + did_you_mean(value, allowed))


def check_optimization(optimizer: str, lr: float, momentum: float, weight_decay: float, schedule: str,
                       milestones: Sequence[float], gamma: float, warmup_epochs: float,
                       prefix: str = "model.") -> None:
    """Validate optimisation settings; errors name the field as `<prefix><name>`."""
    check_choice(f"{prefix}optimizer", optimizer, OPTIMIZERS)
    check_choice(f"{prefix}schedule", schedule, SCHEDULES)
    checks = [
        ("lr", lr, math.isfinite(lr) and lr > 0, "a finite number > 0"),
        ("momentum", momentum, 0 <= momentum < 1, "in [0, 1)"),
        ("weight_decay", weight_decay, math.isfinite(weight_decay) and weight_decay >= 0, "a finite number >= 0"),
        ("gamma", gamma, 0 < gamma <= 1, "in (0, 1]"),
        ("warmup_epochs", warmup_epochs, math.isfinite(warmup_epochs) and warmup_epochs >= 0, "a finite number >= 0"),
    ]
    for name, value, ok, allowed in checks:
        if not ok:
            raise ValueError(f"{prefix}{name} must be {allowed}, got {value!r}")
    for m in milestones:
        if not 0 < m < 1:
            raise ValueError(f"{prefix}milestones must lie in (0, 1) (fractions of the run), got {list(milestones)}")


def build_optimizer(params: Iterable["torch.nn.Parameter"], hp: Any) -> "torch.optim.Optimizer":
    """The optimizer named by hyper-parameters `hp` (optimizer, lr, momentum, nesterov, weight_decay)."""
    import torch

    if hp.optimizer == "sgd":
        return torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum,
                               nesterov=hp.nesterov and hp.momentum > 0, weight_decay=hp.weight_decay)
    return torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)


def lr_factor_fn(schedule: str, total: int, warmup: int, milestones: Sequence[float],
                 gamma: float) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at each optimizer step: linear warm-up, then the schedule."""

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
