"""Benchmark kd_ls.metrics cluster metrics against scikit-learn on blob-like features.

For every N in --sizes, d in --dims, dtype in --dtypes and device in --devices (CUDA only when
present), times each cluster metric on 10-class Gaussian blobs, and its CPU reference on the
same data as a float NumPy array: scikit-learn's silhouette_score, davies_bouldin_score and
calinski_harabasz_score; the class-separation R² by brute force over scikit-learn's cosine
distances (O(N^2 d), like the silhouette); NC1 by its textbook formula in NumPy float64
(Tr(Sigma_W pinv(Sigma_B)) / K; scikit-learn has none). Prints a JSON list of records
{metric, n, d, device, dtype, threads, seconds, sklearn_seconds, speedup, value, sklearn_value};
sklearn fields are null where there is no reference or N > --max-sklearn-n.

Each of our timings follows one untimed warm-up run (CUDA context, kernels, allocator) and is the
minimum over --repeat runs, bracketed by torch.cuda.synchronize on the GPU. scikit-learn needs no
warm-up and is timed once per (metric, N, d, dtype), since it is slow at large N (silhouette is
O(N^2 d)). This is a benchmark, not a test.

    python experiments/bench/cluster_metrics.py --sizes 2000 --dims 64,512 --devices cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable

import numpy as np
import torch
from sklearn import metrics as skm

from kd_ls import metrics as M
from timing import sync  # experiments/bench/timing.py

N_CLASSES = 10

OURS: dict[str, Callable[..., torch.Tensor]] = {
    "silhouette_score": M.silhouette_score,
    "davies_bouldin_score": M.davies_bouldin_score,
    "calinski_harabasz_score": M.calinski_harabasz_score,
    "class_separation_r2": M.class_separation_r2,
    "nc1": M.nc1,
    "variance_ratio": M.variance_ratio,
    "cdnv": M.cdnv,
}


def sklearn_class_separation_r2(x: np.ndarray, labels: np.ndarray) -> float:
    """Kornblith's class-separation R^2 by brute force over scikit-learn's cosine distances:
    1 - (mean over classes of the within-class block mean) / (mean over class pairs of the
    block means), blocks of all ordered pairs, diagonal included (kd_ls's definition)."""
    _, inverse = np.unique(labels, return_inverse=True)
    onehot = np.eye(inverse.max() + 1)[inverse]  # (N, K)
    block_sums = np.zeros((onehot.shape[1], onehot.shape[1]))
    start = 0
    for chunk in skm.pairwise_distances_chunked(x, metric="cosine"):
        block_sums += onehot[start : start + chunk.shape[0]].T @ (chunk @ onehot)
        start += chunk.shape[0]
    counts = onehot.sum(axis=0)
    block_means = block_sums / np.outer(counts, counts)
    return float(1.0 - np.diag(block_means).mean() / block_means.mean())


def numpy_nc1(x: np.ndarray, labels: np.ndarray) -> float:
    """NC1 = Tr(Sigma_W pinv(Sigma_B)) / K by the textbook formula, d x d matrices in float64."""
    x = x.astype(np.float64)
    _, inverse = np.unique(labels, return_inverse=True)
    k = inverse.max() + 1
    means = np.stack([x[inverse == c].mean(axis=0) for c in range(k)])
    within = x - means[inverse]
    between = means - means.mean(axis=0)
    sigma_w = within.T @ within / x.shape[0]
    sigma_b = between.T @ between / k
    return float(np.trace(sigma_w @ np.linalg.pinv(sigma_b)) / k)


# CPU references (scikit-learn's where it has one), by our metric's name.
SKLEARN: dict[str, Callable[..., float]] = {
    "silhouette_score": skm.silhouette_score,
    "davies_bouldin_score": skm.davies_bouldin_score,
    "calinski_harabasz_score": skm.calinski_harabasz_score,
    "class_separation_r2": sklearn_class_separation_r2,
    "nc1": numpy_nc1,
}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _str_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def blobs(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """10 Gaussian classes with unit noise around centres spread wide enough to overlap a little."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    centres = 4.0 * torch.randn(N_CLASSES, d, generator=g) / d**0.25
    return centres[labels] + torch.randn(n, d, generator=g), labels


def time_ours(metric: Callable[[], torch.Tensor], device: torch.device, repeat: int) -> tuple[float, float]:
    """(minimum seconds over `repeat` timed runs after one warm-up, value)."""
    value = float(metric())
    best = float("inf")
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        metric()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best, value


def time_reference(name: str, x: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(seconds, value) of metric `name`'s CPU reference on NumPy features, timed once (no
    warm-up needed; slow at large N)."""
    start = time.perf_counter()
    value = float(SKLEARN[name](x, labels))
    return time.perf_counter() - start, value


def main(argv: list[str] | None = None) -> int:
    """Parse options, time every (N, d, dtype, device, metric), print the JSON records."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=_int_list, default=_int_list("2000,10000,50000"), help="comma-separated N")
    parser.add_argument("--dims", type=_int_list, default=_int_list("64,512,2048"), help="comma-separated d")
    parser.add_argument("--devices", type=_str_list, default=_str_list("cpu,cuda"),
                        help="comma-separated devices; cuda is skipped when unavailable")
    parser.add_argument("--dtypes", type=_str_list, default=["float32"], help="float32 and/or float64")
    parser.add_argument("--metrics", type=_str_list, default=list(OURS), help="subset of: " + ",".join(OURS))
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (minimum is kept)")
    parser.add_argument("--max-sklearn-n", type=int, default=None,
                        help="skip scikit-learn above this N (recorded as null)")
    parser.add_argument("--chunk-size", type=int, default=None, help="silhouette row block (default: library's)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    unknown = sorted(set(args.metrics) - set(OURS)) + sorted(set(args.dtypes) - set(DTYPES))
    if unknown:
        parser.error(f"unknown metric or dtype: {', '.join(unknown)}")
    devices = []
    for name in args.devices:
        if name.startswith("cuda") and not torch.cuda.is_available():
            print(f"skipping device {name}: CUDA is not available", file=sys.stderr)
            continue
        devices.append(torch.device(name))

    records = []
    for n in args.sizes:
        for d in args.dims:
            features, labels = blobs(n, d, args.seed)
            for dtype_name in args.dtypes:
                host = features.to(DTYPES[dtype_name])
                sklearn_cache: dict[str, tuple[float | None, float | None]] = {}
                for device in devices:
                    h, y = host.to(device), labels.to(device)
                    for name in args.metrics:
                        chunked = name == "silhouette_score" and args.chunk_size
                        kwargs = {"chunk_size": args.chunk_size} if chunked else {}
                        print(f"{name} n={n} d={d} {dtype_name} {device}", file=sys.stderr)
                        seconds, value = time_ours(lambda: OURS[name](h, y, **kwargs), device, args.repeat)
                        if name not in sklearn_cache:
                            skip = name not in SKLEARN or (args.max_sklearn_n is not None and n > args.max_sklearn_n)
                            if skip:
                                sklearn_cache[name] = (None, None)
                            else:
                                sklearn_cache[name] = time_reference(name, host.numpy(), labels.numpy())
                        sklearn_seconds, sklearn_value = sklearn_cache[name]
                        records.append({
                            "metric": name,
                            "n": n,
                            "d": d,
                            "device": str(device),
                            "dtype": dtype_name,
                            "threads": torch.get_num_threads(),
                            "seconds": seconds,
                            "sklearn_seconds": sklearn_seconds,
                            "speedup": None if sklearn_seconds is None else sklearn_seconds / seconds,
                            "value": value,
                            "sklearn_value": sklearn_value,
                        })
    json.dump(records, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
