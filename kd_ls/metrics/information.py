"""Müller et al. (2019) information measures of a teacher: smoothness index and I(X; Y).

Formulas from kd_ls/science.md §4. Results are float64 0-dim tensors on the input's device.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from kd_ls.metrics._common import check_chunk, check_rows, row_chunks

DEFAULT_MI_CHUNK = 256


def smoothness_index(teacher_logits: Tensor, labels: Tensor, temperature: float = 1.0) -> Tensor:
    """gamma = E[sum_{k != y} p_k] * K / (K - 1) with p = softmax(teacher_logits / temperature).

    K is the number of logit columns. gamma = 0 for one-hot outputs and 1 for uniform ones. The mass
    off the true class is computed as exp(logsumexp_{k != y} - logsumexp_k) rather than 1 - p_y,
    which would round to 0 for saturated teachers.
    """
    check_rows(teacher_logits, labels, name="teacher_logits")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    k = teacher_logits.shape[1]
    if k < 2:
        raise ValueError(f"smoothness_index needs at least 2 classes, got {k}")
    z = teacher_logits.to(torch.float64) / temperature
    others = z.scatter(1, labels.long()[:, None], -torch.inf)
    off_true = torch.exp(torch.logsumexp(others, dim=1) - torch.logsumexp(z, dim=1))
    return off_true.mean() * k / (k - 1)


def mutual_information(logit_diffs: Tensor, chunk_size: int = DEFAULT_MI_CHUNK) -> Tensor:
    """Müller's Gaussian estimate of I(X; Y) from (N, L) logit differences.

    X indexes the N examples, Y is the logit difference under random augmentation, of which L views
    per example are given. Y | X = x is modelled as N(mu_x, sigma^2) with mu_x the mean of x's L
    views and sigma^2 the mean squared deviation from mu_x over all N * L values. The science.md
    formula averages, over x, the term -(v - mu_x)^2 / (2 sigma^2) - log((1/N) sum_x'
    exp(-(v - mu_x')^2 / (2 sigma^2))) at x's value v; with L views the term is evaluated at each
    view and averaged over views too. Every term is <= log N and the estimate is >= 0 up to rounding,
    which the final clamp to [0, log N] absorbs. If sigma^2 = 0 the limit is used (each view is
    matched only by examples with exactly its mean). Cost O(N^2 L) in blocks of chunk_size examples.
    """
    if logit_diffs.ndim != 2 or logit_diffs.shape[0] < 1 or logit_diffs.shape[1] < 1:
        raise ValueError(f"logit_diffs must be a non-empty (N, L) tensor, got shape {tuple(logit_diffs.shape)}")
    check_chunk(chunk_size)
    d = logit_diffs.to(torch.float64)
    n = d.shape[0]
    mu = d.mean(dim=1)
    deviation = d - mu[:, None]
    # Floor at the smallest normal so sigma^2 = 0 gives the delta-function limit instead of 0/0.
    two_sigma2 = 2.0 * deviation.square().mean().clamp_min(torch.finfo(torch.float64).tiny)
    log_n = math.log(n)
    total = torch.zeros((), dtype=torch.float64, device=d.device)
    for rows in row_chunks(n, chunk_size):
        own = -deviation[rows].square() / two_sigma2
        against_all = -(d[rows, :, None] - mu[None, None, :]).square() / two_sigma2
        total += (own - (torch.logsumexp(against_all, dim=2) - log_n)).sum()
    return (total / d.numel()).clamp(0.0, log_n)


def logit_difference_views(
    model: nn.Module,
    x: Tensor,
    labels_pair: tuple[int, int],
    augment: Callable[..., Tensor],
    n_views: int = 5,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
) -> Tensor:
    """(N, n_views) differences logit_a - logit_b of `model` on n_views augmented copies of x.

    `augment` maps a batch tensor to an augmented batch; when `generator` is given it is called as
    augment(batch, generator=generator) so that the views are reproducible. The model runs in eval
    mode (so BatchNorm uses its running statistics) under no_grad, and its previous mode is
    restored. The result, ready for `mutual_information`, lives on the model output's device.
    """
    if n_views < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views!r}")
    check_chunk(batch_size)
    a, b = (int(c) for c in labels_pair)
    was_training = model.training
    model.eval()
    try:
        views = []
        with torch.no_grad():
            for _ in range(n_views):
                diffs = []
                for rows in row_chunks(x.shape[0], batch_size):
                    batch = augment(x[rows]) if generator is None else augment(x[rows], generator=generator)
                    logits = model(batch)
                    diffs.append(logits[:, a] - logits[:, b])
                views.append(torch.cat(diffs))
    finally:
        model.train(was_training)
    return torch.stack(views, dim=1)
