"""Which study worker runs on which GPU: device placement of a local study's worker processes.

A local study runs its runs in `jobs` spawned worker processes. With GPUs, each worker is
pinned to one GPU through CUDA_VISIBLE_DEVICES, set in the worker before it touches CUDA,
round-robin over the GPUs so they carry equal shares. Small runs leave most of a large GPU
idle, so by default a study starts `runs_per_gpu` workers per GPU (`cluster.runs_per_gpu`,
`kd-ls study --runs-per-gpu N`); an explicit `--jobs` wins over that default. Without GPUs the
workers keep the environment as it is.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


# Where a GPU driver shows itself: NVIDIA's lists one folder per GPU, ROCm's is one device file.
GPU_DRIVER_PATHS = ("/proc/driver/nvidia/gpus", "/dev/kfd")


def gpu_driver_present() -> bool:
    """Whether this machine has an NVIDIA or ROCm driver; without one torch sees no GPU, so a
    study plans CPU workers without importing torch (about 1.5 s)."""
    return any(os.path.exists(path) for path in GPU_DRIVER_PATHS)


def gpu_count() -> int:
    """How many GPUs torch sees here; 0 without a GPU driver, without importing torch."""
    if not gpu_driver_present():
        return 0
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no usable CUDA means CPU workers
        return 0


def default_jobs(gpus: int, runs_per_gpu: int, cpu_jobs: int) -> int:
    """How many workers a study starts by default: `runs_per_gpu` per GPU, else `cpu_jobs`."""
    return gpus * runs_per_gpu if gpus else cpu_jobs


def worker_devices(jobs: int, gpus: int) -> list[Optional[int]]:
    """The GPU (an index among the visible ones) of each of `jobs` workers, in start order.

    Round-robin: worker i gets GPU i % gpus, so no GPU holds more than ceil(jobs / gpus) runs at
    once and workers started first spread over all GPUs. None for every worker without GPUs."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    return [i % gpus if gpus else None for i in range(jobs)]


def worker_env(device: Optional[int], visible: Optional[str] = None) -> dict[str, str]:
    """The environment a worker on GPU `device` sets before touching CUDA (empty for None).

    `visible` is the parent's CUDA_VISIBLE_DEVICES: torch numbers only the GPUs listed there,
    so `device` indexes that list (a study started with CUDA_VISIBLE_DEVICES=2,3 puts its
    workers on GPUs 2 and 3, not 0 and 1)."""
    if device is None:
        return {}
    entries = [entry.strip() for entry in (visible or "").split(",") if entry.strip()]
    return {CUDA_VISIBLE_DEVICES: entries[device] if entries else str(device)}


def device_queue(ctx: Any, jobs: int, gpus: int) -> Any:
    """A `ctx` queue holding one environment per worker, in placement order (None without GPUs).

    Each worker takes the next one as it starts (`init_worker`): workers start in any order,
    so placement by start order is the only kind a process pool allows."""
    if not gpus:
        return None
    queue = ctx.Queue()
    visible = os.environ.get(CUDA_VISIBLE_DEVICES)
    for device in worker_devices(jobs, gpus):
        queue.put(worker_env(device, visible))
    return queue


def init_worker(queue: Any) -> None:
    """Process-pool initializer: apply this worker's environment from `queue` (None: nothing).

    CUDA reads CUDA_VISIBLE_DEVICES once, when it initialises: a worker whose CUDA is already
    up would silently ignore its GPU, so that is an error."""
    if queue is None:
        return
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError("study worker: CUDA was initialised before the worker's GPU was chosen")
    os.environ.update(queue.get())
