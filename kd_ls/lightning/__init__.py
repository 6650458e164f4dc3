"""The Lightning side of kd-ls: the Teacher and Student modules and what trains them.

`module` (ClassifierModule, Teacher), `student` (Student), `grouped_steps` (several optimizer
steps per Lightning call), `optim` (optimizers and schedules), `checkpoint` (reading kd-ls
checkpoints), `teacher_cache` (cached teacher logits), `wandb_logger` (W&B with an offline
fallback), `harness` (one `kd-ls fit` run: the Lightning CLI), `internals` (every touch of
Lightning's private state). Configs name the modules as `kd_ls.lightning.Teacher` and
`kd_ls.lightning.Student`.

The modules load on first use (PEP 562), so that the torch-free parts of this package
(optim's checks, quiet's switches) import without Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"ClassifierModule": "kd_ls.lightning.module", "Teacher": "kd_ls.lightning.module",
          "Student": "kd_ls.lightning.student"}

__all__ = ["ClassifierModule", "Student", "Teacher"]


def __getattr__(name: str) -> Any:
    """Import Teacher, Student or ClassifierModule on first access."""
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'kd_ls.lightning' has no attribute {name!r}")
