"""Exact Euclidean silhouette score in row blocks, on CPU or GPU (kd_ls/science.md §5)."""

from __future__ import annotations

import torch
from torch import Tensor

from kd_ls.metrics._common import (
    check_rows,
    class_index,
    exact_fp32_matmul,
    resolve_chunk,
    row_chunks,
    work_dtype,
)

# Rows per block when chunk_size is None: small blocks stay in CPU cache; on a GPU, 4096 x 50,000
# float32 distances (0.8 GB) keep the device busy.
CPU_DISTANCE_ROWS = 512
CUDA_DISTANCE_ROWS = 4096


def silhouette_score(h: Tensor, y: Tensor, chunk_size: int | None = None) -> Tensor:
    """Mean silhouette coefficient, the same value as sklearn.metrics.silhouette_score.

    For sample i in cluster c: a_i = mean distance to the other members of c, b_i = min over other
    clusters of the mean distance to their members, s_i = (b_i - a_i) / max(a_i, b_i); s_i = 0 for
    a sample alone in its cluster (and where a_i = b_i = 0). Returns the mean of s_i over all
    samples as a float64 0-dim tensor.

    Distances come from |x|^2 + |z|^2 - 2 x.z on a (chunk_size, N) block at a time, in float64 for
    float64 input and float32 (TF32 off) otherwise; the data are centred first, which shrinks the
    norms and with them the cancellation error. Per-cluster sums of the (positive) distances come
    from a block @ one-hot matmul in the same precision; the per-sample coefficients and their
    total are float64.
    Peak memory is about chunk_size * N * 4 bytes for float32 input; chunk_size defaults to 512 rows
    on the CPU and 4096 on CUDA.
    """
    check_rows(h, y)
    chunk_size = resolve_chunk(chunk_size, h.device, cpu=CPU_DISTANCE_ROWS, cuda=CUDA_DISTANCE_ROWS)
    index = class_index(y)
    n, k = h.shape[0], index.classes.numel()
    if not 1 < k < n:
        raise ValueError(f"Number of labels is {k}; valid values are 2 to n_samples - 1 (n_samples = {n})")
    dtype = work_dtype(h)
    # Distances do not depend on the origin, so the rounding of the subtracted mean is harmless.
    x = h.to(dtype) - h.mean(dim=0, dtype=torch.float64).to(dtype)
    sq_norm = torch.linalg.vector_norm(x, dim=1, dtype=torch.float64).square().to(dtype)
    onehot = torch.nn.functional.one_hot(index.inverse, k).to(dtype)
    counts = index.counts.to(torch.float64)
    own_count = counts[index.inverse]
    total = torch.zeros((), dtype=torch.float64, device=h.device)
    with exact_fp32_matmul(h.device):
        for rows in row_chunks(n, chunk_size):
            block = x[rows] @ x.T
            block.mul_(-2).add_(sq_norm[rows, None]).add_(sq_norm[None, :]).clamp_min_(0)
            # A point's distance to itself must be exactly 0, not sqrt(rounding error).
            local = torch.arange(block.shape[0], device=h.device)
            block[local, local + rows.start] = 0
            block.sqrt_()
            cluster_sums = (block @ onehot).to(torch.float64)
            del block
            own = index.inverse[rows]
            intra = cluster_sums[local, own] / (own_count[rows] - 1).clamp_min(1)
            mean_to = cluster_sums / counts
            mean_to[local, own] = torch.inf
            inter = mean_to.min(dim=1).values
            coefficient = (inter - intra) / torch.maximum(intra, inter)
            coefficient = torch.where(own_count[rows] > 1, coefficient, 0.0).nan_to_num_(nan=0.0)
            total += coefficient.sum()
    return total / n
