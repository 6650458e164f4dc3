"""Müller et al. (2019) projection of penultimate features onto the plane of three class templates.

kd_ls/science.md §5: the template of class c is its last-layer weight row with the bias
appended, [w_c | b_c]; a feature h becomes [h | 1], so that template . feature is the logit. The
plane through the three template points t1, t2, t3 gets the orthonormal basis (e1, e2) from
Gram-Schmidt on (t2 - t1, t3 - t1). Points are projected as ((f - t1).e1, (f - t1).e2): the origin
is the first template, so t1, t2, t3 land at (0, 0), (|t2 - t1|, 0) and a point above the x-axis.
Subtracting t1 only translates the scatter; it makes the templates' positions easy to read.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from kd_ls.metrics._common import check_rows


def muller_basis(weight: Tensor, bias: Tensor | None, classes: Sequence[int] = (0, 1, 2)) -> tuple[Tensor, Tensor]:
    """Origin t1 (d+1,) and orthonormal basis (2, d+1) of the plane through three class templates.

    `weight` is the (K, d) last-layer weight, `bias` its (K,) bias (None counts as zeros). float64.
    Raises ValueError if the three templates are collinear.
    """
    if len(classes) != 3:
        raise ValueError(f"classes must name exactly 3 classes, got {tuple(classes)!r}")
    w = weight.to(torch.float64)
    b = torch.zeros(w.shape[0], dtype=torch.float64, device=w.device) if bias is None else bias.to(torch.float64)
    templates = torch.cat([w, b[:, None]], dim=1)[list(classes)]
    origin = templates[0]
    first = templates[1] - origin
    second = templates[2] - origin
    scale = float(torch.maximum(first.norm(), second.norm()))
    collinear = ValueError("the three class templates are collinear; they span no plane")
    if float(first.norm()) == 0.0:
        raise collinear
    e1 = first / first.norm()
    second = second - (second @ e1) * e1
    if float(second.norm()) <= 1e-12 * scale:
        raise collinear
    e2 = second / second.norm()
    return origin, torch.stack([e1, e2])


def muller_projection(
    features: Tensor,
    labels: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    classes: Sequence[int] = (0, 1, 2),
    per_class: int = 100,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Project up to `per_class` examples of each of three classes onto their templates' plane.

    Examples are the first `per_class` of each class in input order, or a random subset drawn with
    `generator` when one is given. Returns (points (M, 2) in the features' floating dtype, labels
    (M,) with the original class values), grouped by class in the order of `classes`.
    """
    check_rows(features, labels)
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class!r}")
    origin, basis = muller_basis(weight, bias, classes)
    chosen = []
    for c in classes:
        members = torch.nonzero(labels == c).flatten()
        if generator is not None:
            order = torch.randperm(members.numel(), generator=generator, device=generator.device)
            members = members[order.to(members.device)]
        chosen.append(members[:per_class])
    picked = torch.cat(chosen)
    ones = torch.ones(picked.numel(), 1, dtype=torch.float64, device=features.device)
    lifted = torch.cat([features[picked].to(torch.float64), ones], dim=1)
    points = (lifted - origin.to(features.device)) @ basis.to(features.device).T
    return points.to(features.dtype), labels[picked]
