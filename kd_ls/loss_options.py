"""The losses and label-smoothing conventions by name, and the checks of their settings.

Torch-free, so that a study file is checked (and a dry run planned) before torch is imported;
kd_ls/losses.py holds the formulas and re-exports these names.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Mapping

from kd_ls.names import did_you_mean

Convention = Literal["uniform", "others", "adaptive", "online"]
CONVENTIONS: tuple[str, ...] = ("uniform", "others", "adaptive", "online")


def check_range(name: str, value: float, low: float, high: float, *, closed_high: bool) -> None:
    """Raise a one-line ValueError unless low <= value <= high (or < high when open)."""
    above = value > high if closed_high else value >= high
    if not (value >= low) or above:
        bracket = "]" if closed_high else ")"
        raise ValueError(f"{name} must be in [{low:g}, {high:g}{bracket}, got {value!r}")


def check_convention(convention: str) -> None:
    """Raise a one-line ValueError unless `convention` is one of CONVENTIONS."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}; got {convention!r}"
                         + did_you_mean(convention, CONVENTIONS))


def check_temperature(temperature: float) -> None:
    """Raise a one-line ValueError unless the temperature is positive."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")


LOSSES: tuple[str, ...] = ("kd", "lskd", "dkd")
# The options each loss takes, with their defaults (DKD: the paper's CIFAR-100 values).
LOSS_OPTIONS: dict[str, dict[str, float]] = {"kd": {}, "lskd": {}, "dkd": {"dkd_alpha": 1.0, "dkd_beta": 8.0}}


def check_loss(loss: str, options: Mapping[str, Any], soften_student: bool = True, prefix: str = "",
               option_table: Mapping[str, Mapping[str, float]] = LOSS_OPTIONS) -> dict[str, float]:
    """Validate a loss name and its options; return every option of that loss, defaults filled in.

    Errors are one line and name the field as `<prefix>loss` or `<prefix><option>`. An option
    of another loss (dkd_beta with kd) is refused, not ignored. `option_table` lists each loss's
    options (a caller with options of its own, such as the Student's warm-up, passes a wider one)."""
    if loss not in LOSSES:
        raise ValueError(f"{prefix}loss must be one of {', '.join(LOSSES)}; got {loss!r}{did_you_mean(loss, LOSSES)}")
    allowed = option_table[loss]
    for name, value in options.items():
        if name not in allowed:
            owners = [other for other in LOSSES if name in option_table[other]]
            where = f"an option of loss {owners[0]!r}, not of" if owners else "not an option of"
            hint = "" if owners else did_you_mean(name, allowed)
            raise ValueError(f"{prefix}{name} is {where} loss {loss!r}; "
                             f"its options: {', '.join(allowed) or 'none'}{hint}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{prefix}{name} must be a finite number >= 0, got {value!r}")
    if not soften_student and loss != "kd":
        raise ValueError(f"{prefix}soften_student=False (only the teacher softened) is defined for loss 'kd' only; "
                         f"loss {loss!r} softens both by T")
    return {**allowed, **{name: float(value) for name, value in options.items()}}


# Each loss's options as a Student takes them: the loss's own, and DKD's warm-up (0: none).
STUDENT_LOSS_OPTIONS: dict[str, dict[str, float]] = {
    loss: {**options, **({"dkd_warmup_epochs": 0} if loss == "dkd" else {})} for loss, options in LOSS_OPTIONS.items()}


def loss_settings(loss: str, options: Mapping[str, Any], soften_student: bool = True,
                  prefix: str = "model.") -> dict[str, Any]:
    """A Student's loss options (STUDENT_LOSS_OPTIONS), checked, every default filled in."""
    settings: dict[str, Any] = check_loss(loss, options, soften_student, prefix, STUDENT_LOSS_OPTIONS)
    if "dkd_warmup_epochs" in settings:
        warmup = options.get("dkd_warmup_epochs", 0)
        if isinstance(warmup, bool) or not isinstance(warmup, int):
            raise ValueError(f"{prefix}dkd_warmup_epochs must be an integer >= 0, got {warmup!r}")
        settings["dkd_warmup_epochs"] = warmup
    return settings
