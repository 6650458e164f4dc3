"""Class-cluster tightness of penultimate features (kd_ls/science.md §5), without N x N work.

K is always the number of distinct labels present, taken in sorted order. Every statistic is built
from per-class sums and per-sample distances to the class mean, accumulated in float64 over row
chunks (`chunk_size` rows; default 1024 on the CPU, 8192 on CUDA), so N = 50,000 features of
d = 2,048 never need more than one chunk in float64 at a time.
Results are float64 0-dim tensors on the features' device.

Conventions (Papyan, Han & Donoho 2020):
- mu_k is the mean of class k; mu_G is the mean of the K class means (not of the samples, which
  differs when classes are imbalanced).
- Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T (average within-class covariance, 1/N).
- Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T, of rank at most K - 1.
Davies-Bouldin and Calinski-Harabasz instead follow scikit-learn exactly (its global mean is the
sample mean).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from kd_ls.metrics._common import ClassIndex, check_rows, class_index, resolve_chunk, row_chunks


class ClassMoments(NamedTuple):
    """First and second moments of each class, float64."""

    index: ClassIndex
    means: Tensor  # (K, d) class means
    sq_dist: Tensor  # (N,) ||h_i - mu_{y_i}||^2


def _class_means(h: Tensor, index: ClassIndex, chunk_size: int) -> Tensor:
    """(K, d) float64 class means, summed block by block."""
    sums = torch.zeros(index.classes.numel(), h.shape[1], dtype=torch.float64, device=h.device)
    for rows in row_chunks(h.shape[0], chunk_size):
        sums.index_add_(0, index.inverse[rows], h[rows].to(torch.float64))
    return sums / index.counts[:, None].to(torch.float64)


def class_moments(h: Tensor, y: Tensor, chunk_size: int | None = None) -> ClassMoments:
    """Class means and each sample's squared distance to its class mean, in float64.

    Distances are taken from exact float64 differences rather than from |h|^2 - |mu|^2, which
    cancels catastrophically for tight clusters far from the origin.
    """
    check_rows(h, y)
    index = class_index(y)
    chunk_size = resolve_chunk(chunk_size, h.device)
    means = _class_means(h, index, chunk_size)
    sq_dist = torch.empty(h.shape[0], dtype=torch.float64, device=h.device)
    for rows in row_chunks(h.shape[0], chunk_size):
        centred = h[rows].to(torch.float64) - means[index.inverse[rows]]
        sq_dist[rows] = centred.square().sum(dim=1)
    return ClassMoments(index, means, sq_dist)


def _per_class_mean(values: Tensor, index: ClassIndex) -> Tensor:
    sums = torch.zeros(index.classes.numel(), dtype=torch.float64, device=values.device)
    return sums.index_add_(0, index.inverse, values) / index.counts.to(torch.float64)


def _need_two_classes(index: ClassIndex, metric: str) -> None:
    if index.classes.numel() < 2:
        raise ValueError(f"{metric} needs at least 2 classes, got {index.classes.numel()}")


def _centroid_distances(means: Tensor) -> Tensor:
    # Direct differences (not the Gram trick): K x K is small, and identical centroids must give
    # exactly 0, which Davies-Bouldin tests for.
    return torch.cdist(means, means, compute_mode="donot_use_mm_for_euclid_dist")


def class_separation_r2(h: Tensor, y: Tensor, chunk_size: int | None = None) -> Tensor:
    """Kornblith et al. (2021) class separation R^2 = 1 - mean_within / mean_overall (cosine).

    With distance 1 - cos(h_i, h_j): mean_within averages, over classes k, the mean distance over
    the full n_k x n_k block of ordered pairs, *including* the i == j zeros on the diagonal (as
    Kornblith's `_cosine_distance` code does); mean_overall averages, over all K^2 ordered class
    pairs (k, l) including k == l, the mean over the n_k x n_l block. Both follow from the per-class
    sums s_k of unit vectors: block mean = 1 - s_k.s_l / (n_k n_l). A zero feature vector counts as
    distance 1 from everything. Higher = tighter clusters.
    """
    check_rows(h, y)
    index = class_index(y)
    k = index.classes.numel()
    chunk_size = resolve_chunk(chunk_size, h.device)
    sums = torch.zeros(k, h.shape[1], dtype=torch.float64, device=h.device)
    for rows in row_chunks(h.shape[0], chunk_size):
        unit = torch.nn.functional.normalize(h[rows].to(torch.float64), dim=1)
        sums.index_add_(0, index.inverse[rows], unit)
    class_mean = sums / index.counts[:, None].to(torch.float64)
    within = (1.0 - class_mean.square().sum(dim=1)).mean()
    # mean over (k, l) of 1 - m_k.m_l equals 1 - |mean_k m_k|^2.
    overall = 1.0 - class_mean.mean(dim=0).square().sum()
    return 1.0 - within / overall


def nc1(h: Tensor, y: Tensor, chunk_size: int | None = None) -> Tensor:
    """Neural-collapse NC1 = Tr(Sigma_W Sigma_B^+) / K (Papyan et al. 2020). Lower = tighter.

    Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T divides by N (every sample weighs the
    same); Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T with mu_G the MEAN OF THE K CLASS
    MEANS, not the sample mean, so that Sigma_B weighs every class equally and has rank at most
    K - 1 (Papyan et al. use balanced classes, where both agree; centring on the sample mean instead
    would, with imbalanced classes, give Sigma_B a spurious K-th direction).

    No d x d matrix is formed: with M = U S V^T the (K, d) centred class means, Sigma_B = M^T M / K,
    so Sigma_B^+ = K V S^-2 V^T and Tr(Sigma_W Sigma_B^+) / K = ||C V S^-1||_F^2 / N, C the (N, d)
    within-class residuals.

    Sigma_B^+ is restricted to the span of the centred class means:
    - at most the K - 1 largest singular values are kept: the rows of M sum to zero, so its K-th
      singular value (d >= K) is only the rounding residue of the centring, about eps * |mu_k|,
      which a shift of every feature by a constant inflates; inverting it (torch.linalg.pinv's
      default cutoff, max(K, d) * eps * s_max) made NC1 of 6 points in 3-D (K = 3) shifted by
      +3.0 about 7e27 instead of 0.0018 (tests/test_cluster_invariances.py);
    - of those, singular values <= max(N, d) * eps_float64 * ||(mu_1 .. mu_K)||_F are dropped too.
      The scale is the Frobenius norm of the UNCENTRED class means (always >= s_max): the absolute
      rounding error of the float64 class means and their centring grows with |mu_k| (with the
      shift), not with the spread s_max, so a cutoff relative to s_max alone would invert the
      residue of a genuinely degenerate direction (e.g. collinear class means) once the features
      are shifted. The factor max(N, d) is numpy matrix_rank's max(rows, columns), with the N
      rows summed into the means as the rows (their rounding error grows with N). eps is
      float64's because the means are accumulated in float64 whatever the input dtype (a float32
      eps would drop real directions: 50,000 * 1.2e-7 = 6e-3). A dropped direction has a
      class-mean spread at the rounding level of the means, which float64 cannot resolve; any
      resolvable spread lies far above the cutoff, so NC1 does not depend on it and shifting
      every feature changes nothing.
    If all class means coincide (to that level), Sigma_B^+ = 0 and NC1 = 0.
    """
    check_rows(h, y)
    index = class_index(y)
    _need_two_classes(index, "nc1")
    chunk_size = resolve_chunk(chunk_size, h.device)
    means = _class_means(h, index, chunk_size)
    k, d = means.shape
    centred_means = means - means.mean(dim=0)
    _, singular, right = torch.linalg.svd(centred_means, full_matrices=False)  # S descending
    cutoff = max(h.shape[0], d) * torch.finfo(torch.float64).eps * torch.linalg.matrix_norm(means)
    singular, right = singular[: k - 1], right[: k - 1]
    inverse = torch.where(singular > cutoff, singular.reciprocal(), 0.0)  # no host sync on CUDA
    projector = right.T * inverse  # (d, min(K - 1, d)): V S^-1, dropped directions zeroed
    total = torch.zeros((), dtype=torch.float64, device=h.device)
    for rows in row_chunks(h.shape[0], chunk_size):
        residual = h[rows].to(torch.float64) - means[index.inverse[rows]]
        total += (residual @ projector).square().sum()
    return total / h.shape[0]


def variance_ratio(h: Tensor, y: Tensor, chunk_size: int | None = None) -> Tensor:
    """Tr(Sigma_W) / Tr(Sigma_B), with the module docstring's Sigma_W (1/N) and Sigma_B."""
    moments = class_moments(h, y, chunk_size)
    _need_two_classes(moments.index, "variance_ratio")
    trace_within = moments.sq_dist.mean()
    trace_between = (moments.means - moments.means.mean(dim=0)).square().sum(dim=1).mean()
    return trace_within / trace_between


def cdnv(h: Tensor, y: Tensor, chunk_size: int | None = None) -> Tensor:
    """Class-distance normalised variance (Galanti et al. 2022), averaged over class pairs.

    Mean over unordered pairs i < j of (var_i + var_j) / (2 ||mu_i - mu_j||^2), with var_k the mean
    squared distance of class-k features to mu_k.
    """
    moments = class_moments(h, y, chunk_size)
    _need_two_classes(moments.index, "cdnv")
    variances = _per_class_mean(moments.sq_dist, moments.index)
    distances = _centroid_distances(moments.means)
    i, j = torch.triu_indices(len(variances), len(variances), offset=1, device=h.device)
    return ((variances[i] + variances[j]) / (2.0 * distances[i, j].square())).mean()


def davies_bouldin_score(h: Tensor, y: Tensor, chunk_size: int | None = None) -> Tensor:
    """Davies-Bouldin index, identical to sklearn.metrics.davies_bouldin_score. Lower = tighter.

    s_k = mean Euclidean distance of class k to its centroid; score = mean_k max_{l != k}
    (s_k + s_l) / ||mu_k - mu_l||; 0 when all s_k or all centroid distances are (close to) 0,
    and coincident centroids are skipped, as scikit-learn does.
    """
    moments = class_moments(h, y, chunk_size)
    index = moments.index
    if not 1 < index.classes.numel() < h.shape[0]:
        raise ValueError(
            f"Number of labels is {index.classes.numel()}; valid values are 2 to n_samples - 1 "
            f"(n_samples = {h.shape[0]})"
        )
    spread = _per_class_mean(moments.sq_dist.sqrt(), index)
    distances = _centroid_distances(moments.means)
    zero = torch.zeros((), dtype=torch.float64, device=h.device)
    # np.allclose(x, 0) means |x| <= 1e-8 everywhere (atol only).
    if bool((spread.abs() <= 1e-8).all()) or bool((distances.abs() <= 1e-8).all()):
        return zero
    distances = distances.masked_fill(distances == 0, torch.inf)
    ratios = (spread[:, None] + spread[None, :]) / distances
    return ratios.max(dim=1).values.mean()


def calinski_harabasz_score(h: Tensor, y: Tensor, chunk_size: int | None = None) -> Tensor:
    """Calinski-Harabasz index, identical to sklearn.metrics.calinski_harabasz_score.

    [sum_k n_k ||mu_k - mean||^2 / (K - 1)] / [sum_i ||h_i - mu_{y_i}||^2 / (N - K)], with `mean`
    the sample mean; 1.0 when the within-class dispersion is exactly 0. Higher = tighter.
    """
    moments = class_moments(h, y, chunk_size)
    index = moments.index
    n, k = h.shape[0], index.classes.numel()
    if not 1 < k < n:
        raise ValueError(f"Number of labels is {k}; valid values are 2 to n_samples - 1 (n_samples = {n})")
    counts = index.counts.to(torch.float64)
    grand_mean = (counts[:, None] * moments.means).sum(dim=0) / n
    between = (counts * (moments.means - grand_mean).square().sum(dim=1)).sum()
    within = moments.sq_dist.sum()
    if float(within) == 0.0:
        return torch.ones((), dtype=torch.float64, device=h.device)
    return between * (n - k) / (within * (k - 1))


def stability(probs: Tensor, y: Tensor, chunk_size: int | None = None) -> Tensor:
    """Shen et al. (2021) Eq. 2: S = 1 - (1/K) sum_c (1/n_c) sum_{i in c} ||p_i - mean_c(p)||^2.

    `probs` are the teacher's softmax outputs (N, C); the classes c are the distinct labels of y.
    Higher = the teacher's outputs within each class vary less.
    """
    moments = class_moments(probs, y, chunk_size)
    return 1.0 - _per_class_mean(moments.sq_dist, moments.index).mean()
