"""On-device augmentation: padded random crop + horizontal flip for images (N, C, H, W), a
random circular shift for 1-D signals (N, C, L).

Each augmented input also gets a *view id* naming which of the finite set of views it is
(crop offset and flip, or shift), so a frozen teacher's logits can be cached per view.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def num_views(pad: int, flip: bool) -> int:
    """How many distinct views `random_crop_flip` can produce."""
    return (2 * pad + 1) ** 2 * (2 if flip else 1)


def crop_flip_views(x: Tensor, dy: Tensor, dx: Tensor, flipped: Tensor, pad: int) -> Tensor:
    """Apply per-sample crop offsets (dy, dx in [0, 2*pad]) and flips to a batch (N, C, H, W)."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (N, 1, W)
    # Flip by reading columns right to left, so crop and flip are one gather.
    cols = torch.where(flipped[:, None, None], cols.flip(-1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def view_id(dy: Tensor, dx: Tensor, flipped: Tensor, pad: int) -> Tensor:
    """Integer id in [0, num_views) of the view (dy, dx, flipped)."""
    side = 2 * pad + 1
    return (flipped.long() * side + dy) * side + dx


def views_from_id(ids: Tensor, pad: int) -> tuple[Tensor, Tensor, Tensor]:
    """Inverse of `view_id`: (dy, dx, flipped) for each id."""
    side = 2 * pad + 1
    dx = ids % side
    dy = (ids // side) % side
    flipped = (ids // (side * side)).bool()
    return dy, dx, flipped


def random_crop_flip(
    x: Tensor, pad: int = 4, flip: bool = True, generator: Optional[torch.Generator] = None
) -> tuple[Tensor, Tensor]:
    """The standard CIFAR augmentation on a device-resident batch; returns (images, view ids)."""
    n = x.shape[0]
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=generator.device if generator else "cpu")
    flips = torch.randint(0, 2, (n,), generator=generator, device=offsets.device).bool() & flip
    dy, dx, flips = offsets[0].to(x.device), offsets[1].to(x.device), flips.to(x.device)
    return crop_flip_views(x, dy, dx, flips, pad), view_id(dy, dx, flips, pad)


def num_shift_views(pad: int) -> int:
    """How many distinct views `random_shift` can produce: shifts -pad..pad."""
    return 2 * pad + 1


def shift_views(x: Tensor, ids: Tensor, pad: int) -> Tensor:
    """Roll each signal of a batch (N, C, L) circularly by its view id minus pad (id pad = unshifted)."""
    length = x.shape[-1]
    source = (torch.arange(length, device=x.device)[None, :] - (ids[:, None] - pad)) % length  # torch.roll's indices
    return x.gather(-1, source[:, None, :].expand(-1, x.shape[1], -1))


def random_shift(x: Tensor, pad: int = 4, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """A random circular shift of up to `pad` positions per signal; returns (signals, view ids)."""
    ids = torch.randint(0, 2 * pad + 1, (x.shape[0],), generator=generator,
                        device=generator.device if generator else "cpu").to(x.device)
    return shift_views(x, ids, pad), ids
