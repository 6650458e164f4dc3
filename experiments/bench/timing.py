"""What every benchmark here shares: complete wall-clock times on any device, and data modules
set up on a device the way a Trainer would, without one."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import torch


def sync(device: torch.device | str) -> None:
    """Wait for queued GPU work (no-op on the CPU), so wall-clock times are complete."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(batches: Callable[[], Iterable[Any]], step: Callable[[Any], Any], warmup: int, steps: int,
                device: torch.device | str) -> float:
    """Seconds of `steps` calls of `step`, one per batch, after `warmup` untimed ones.

    `batches()` starts a pass over the data; it is called again whenever a pass ends (a new
    epoch), so the timed steps may span epochs."""
    if warmup < 1 or steps < 1:
        raise ValueError(f"warmup and steps must be >= 1, got {warmup} and {steps}")
    done, start = 0, 0.0
    while True:
        empty = True
        for batch in batches():
            empty = False
            step(batch)
            done += 1
            if done == warmup:
                sync(device)
                start = time.perf_counter()
            elif done == warmup + steps:
                sync(device)
                return time.perf_counter() - start
        if empty:
            raise ValueError("timed_steps: a pass over the data yielded no batch")


def resident(dm: Any, device: torch.device) -> Any:
    """Set up a kd-ls data module with its splits, statistics and augmentation generator on
    `device`, as a Trainer's setup would (no Trainer needed); returns `dm`."""
    dm.data_on_device = False  # setup() without a trainer keeps CPU tensors; move them ourselves
    dm.setup()
    dm.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in dm.splits.items()}
    dm.mean, dm.std = dm.mean.to(device), dm.std.to(device)
    dm.augment_generator = torch.Generator(device=device).manual_seed(1)
    return dm
