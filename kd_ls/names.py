"""Suggestions for mistyped names: "did you mean X?" for a key, option, model, dataset, loss or
convention name close to an allowed one (the standard library's difflib). A foundation module:
any part of kd-ls may use it."""

from __future__ import annotations

import difflib
from typing import Iterable, Optional


def closest(name: object, allowed: Iterable[object]) -> Optional[str]:
    """The allowed name closest to `name` (case ignored), or None when none is close or `name` is allowed."""
    choices = [str(choice) for choice in allowed]
    if str(name) in choices:
        return None
    by_lower = {choice.lower(): choice for choice in choices}
    match = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1)
    return by_lower[match[0]] if match else None


def did_you_mean(name: object, allowed: Iterable[object]) -> str:
    """'; did you mean X?' when `name` is close to an allowed name, else '': the end of a one-line
    error, e.g. f"study.convention: must be one of {', '.join(CONVENTIONS)}; got {c!r}{did_you_mean(c, CONVENTIONS)}"."""
    match = closest(name, allowed)
    return f"; did you mean {match}?" if match is not None else ""
