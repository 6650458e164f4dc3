"""Durations as people read them (torch-free: the study's dry run and progress lines use it)."""

from __future__ import annotations

from typing import Optional


def clock(seconds: Optional[float]) -> str:
    """A duration as H:MM:SS; '?' when unknown."""
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
