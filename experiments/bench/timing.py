"""What every benchmark here shares: complete wall-clock times on any device."""

from __future__ import annotations

import torch


def sync(device: torch.device | str) -> None:
    """Wait for queued GPU work (no-op on the CPU), so wall-clock times are complete."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
