"""The teacher-logit cache: a frozen teacher's logits for every training sample and view.

Built once per teacher and training split, stored in the teacher's run folder and shared by
all its students, which then look soft labels up instead of running the teacher each step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from kd_ls.io import atomic_save_tensor, sha256_file, tensor_fingerprint
from kd_ls.layout import RunLayout


@torch.no_grad()
def compute_logit_cache(teacher: nn.Module, dm: Any) -> Tensor:
    """Teacher logits (N_train, V, K) for every training sample under each of the V views."""
    x, _ = dm.splits["train"]
    device = next(teacher.parameters()).device
    views = []
    for view in range(dm.num_views):
        chunks = [teacher(dm.view_inputs(x[i : i + dm.eval_batch_size].to(device), view)).float()
                  for i in range(0, x.shape[0], dm.eval_batch_size)]
        views.append(torch.cat(chunks))
    return torch.stack(views, dim=1)


def teacher_logit_cache(teacher: nn.Module, dm: Any, teacher_ckpt: str) -> Tensor:
    """The cache for this teacher and training split, shared through the teacher's run folder.

    Its file is named by the training inputs, the number of views and the checkpoint's SHA-256,
    so a teacher retrained into the same folder never reuses the old teacher's logits."""
    key = tensor_fingerprint(dm.splits["train"][0], dm.num_views, sha256_file(teacher_ckpt))
    path = RunLayout.of_checkpoint(teacher_ckpt).logit_cache(key)
    device = next(teacher.parameters()).device
    if path.exists():
        try:
            return torch.load(path, map_location=device)
        except Exception:  # noqa: BLE001 - a damaged cache file is rebuilt, never trusted
            pass
    cache = compute_logit_cache(teacher, dm)
    atomic_save_tensor(path, cache)
    return cache
