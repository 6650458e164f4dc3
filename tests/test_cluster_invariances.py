"""Invariances of the class-cluster metrics (kd_ls/metrics/clusters.py and kd_ls.metrics.silhouette_score),
and NC1 against an independent dense numpy implementation of kd_ls/science.md §5:
NC1 = Tr(Sigma_W Sigma_B^+) / K, Sigma_W = residual^T residual / N, Sigma_B around the mean of the K class
means, Sigma_B^+ the pseudo-inverse on the span of the centred class means."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from kd_ls import metrics as M

# Metrics are looked up on the module at call time (M.nc1, not a captured function), so a patched
# kd_ls.metrics is what gets tested.


def _imbalanced(seed: int, sizes: tuple[int, ...], d: int, spread: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian classes of the given sizes around random centres, rows shuffled, float64."""
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((n,), k) for k, n in enumerate(sizes)])
    y = y[torch.randperm(len(y), generator=g)]
    centres = spread * torch.randn(len(sizes), d, generator=g, dtype=torch.float64)
    h = torch.randn(len(y), d, generator=g, dtype=torch.float64) + centres[y]
    return h, y


def _dense_nc1(x: np.ndarray, labels: np.ndarray, centre: str = "class_means", rcond: float = 1e-10) -> float:
    """The definition, dense, in numpy: d x d covariances and numpy.linalg.pinv with an explicit rcond.

    rcond is relative to the largest eigenvalue of Sigma_B: the centring's null direction sits at
    ~1e-16 of it, real directions of the test data at > 1e-4. centre="sample_mean" is the
    convention of one published implementation, used only to check that the data tell them apart.
    """
    classes = np.unique(labels)
    means = np.stack([x[labels == c].mean(axis=0) for c in classes])
    mu_g = means.mean(axis=0) if centre == "class_means" else x.mean(axis=0)
    residual = x - means[np.searchsorted(classes, labels)]
    sigma_w = residual.T @ residual / len(x)
    sigma_b = (means - mu_g).T @ (means - mu_g) / len(classes)
    return float(np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=rcond, hermitian=True)) / len(classes))


def _dense_variance_ratio(x: np.ndarray, labels: np.ndarray, centre: str = "class_means") -> float:
    classes = np.unique(labels)
    means = np.stack([x[labels == c].mean(axis=0) for c in classes])
    mu_g = means.mean(axis=0) if centre == "class_means" else x.mean(axis=0)
    residual = x - means[np.searchsorted(classes, labels)]
    return float(np.sum(residual**2) / len(x) / (np.sum((means - mu_g) ** 2) / len(classes)))


# ---------------------------------------------------------------- (a) the six-point example

# 6 points in 3-D, 2 per class: tight classes near the three unit vectors (values in twentieths).
SIX_H = torch.tensor(
    [[21, 2, 0], [19, 2, -1], [1, 22, 1], [1, 19, 0], [2, 2, 19], [0, 0, 18]], dtype=torch.float64
) / 20
SIX_Y = torch.tensor([0, 0, 1, 1, 2, 2])


def test_nc1_six_points_shifted_by_three() -> None:
    # With pinv's default cutoff the +3.0 shift gave ~7e27: the rounding residue of the centring
    # (the K-th singular value of the centred class means, zero in exact arithmetic) was inverted.
    plain = M.nc1(SIX_H, SIX_Y).item()
    shifted = M.nc1(SIX_H + 3.0, SIX_Y).item()
    reference = _dense_nc1(SIX_H.numpy(), SIX_Y.numpy())
    assert reference == pytest.approx(0.0018054601030428, rel=1e-9)
    assert plain == pytest.approx(reference, rel=1e-9)
    assert math.isfinite(shifted) and 0 < shifted < 0.01
    assert shifted == pytest.approx(plain, rel=1e-9)


# ---------------------------------------------------------------- (b) large offsets


# d < K - 1, d = K - 1, d = K, d > K and d >> K.
SHAPES = [(2, 6), (4, 5), (5, 5), (9, 4), (64, 3)]


def _sizes(k: int) -> tuple[int, ...]:
    return tuple(5 + 7 * i for i in range(k))  # 5, 12, 19, ...: imbalanced


@pytest.mark.parametrize("offset", [1e3, 1e4])
@pytest.mark.parametrize(("d", "k"), SHAPES)
def test_nc1_large_offset_float64(d: int, k: int, offset: float) -> None:
    h, y = _imbalanced(10 * d + k, _sizes(k), d)
    plain = M.nc1(h, y, chunk_size=7).item()
    assert plain == pytest.approx(_dense_nc1(h.numpy(), y.numpy()), rel=1e-9)
    per_feature = offset * (1.0 + torch.rand(d, generator=torch.Generator().manual_seed(d), dtype=torch.float64))
    for shift in (offset, per_feature):
        shifted = M.nc1(h + shift, y, chunk_size=7).item()
        assert shifted == pytest.approx(plain, rel=1e-9)


@pytest.mark.parametrize(("d", "k"), SHAPES)
def test_nc1_large_offset_float32(d: int, k: int) -> None:
    # h32 + 100 is itself rounded to float32 (ulp(100) = 7.6e-6 against a spread of ~1), so the
    # shifted features are slightly different data: the tolerance is that of the input rounding.
    h, y = _imbalanced(10 * d + k + 1, _sizes(k), d)
    h32 = h.float()
    plain = M.nc1(h32, y).item()
    assert plain == pytest.approx(_dense_nc1(h32.double().numpy(), y.numpy()), rel=1e-9)
    shifted = M.nc1(h32 + 100.0, y).item()
    assert shifted == pytest.approx(plain, rel=1e-4)


@pytest.mark.parametrize("offset", [0.0, 3.0, 1e3, 1e4])
def test_nc1_collinear_class_means(offset: float) -> None:
    # K = 3 class means on one line through (offset, offset, offset): Sigma_B has rank 1 < K - 1, a
    # genuine (not only centring-made) null direction. Each class is its centre +- the same
    # residuals, so mu_k = c_k up to rounding and, with u the line's unit direction and
    # T = sum_k (t_k - mean t)^2, Sigma_B^+ = (K / T) u u^T and NC1 = u^T Sigma_W u / T.
    # The rounding of the means grows with the offset, not with the spread of the means: a
    # cutoff relative to the largest singular value alone (at machine-epsilon level) inverts it.
    u = np.array([1.0, 2.0, 3.0]) / math.sqrt(14.0)
    t = np.array([-1.0, 0.5, 2.0])
    rng = np.random.default_rng(0)
    residuals = rng.standard_normal((4, 3))
    rows, labels = [], []
    for k in range(3):
        centre = offset + t[k] * u
        for z in residuals:
            rows += [centre + z, centre - z]
            labels += [k, k]
    h = torch.tensor(np.array(rows))
    y = torch.tensor(labels)
    sigma_w = 2 * residuals.T @ residuals * 3 / len(rows)
    expected = u @ sigma_w @ u / np.sum((t - t.mean()) ** 2)
    assert M.nc1(h, y).item() == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------- (c) imbalanced classes, dense reference


@pytest.mark.parametrize(
    ("d", "sizes"), [(3, (2, 9, 30, 4, 17)), (4, (40, 3, 11, 6, 2)), (12, (3, 50, 8)), (30, (25, 4, 9, 2))]
)
def test_nc1_and_variance_ratio_imbalanced_match_dense_reference(d: int, sizes: tuple[int, ...]) -> None:
    h, y = _imbalanced(d, sizes, d, spread=1.0)
    x, labels = h.numpy(), y.numpy()
    reference = _dense_nc1(x, labels)
    # The data must tell the two global-mean conventions apart, or this test could not fail.
    assert abs(_dense_nc1(x, labels, centre="sample_mean") / reference - 1) > 0.01
    assert abs(_dense_variance_ratio(x, labels, centre="sample_mean") / _dense_variance_ratio(x, labels) - 1) > 0.01
    assert M.nc1(h, y, chunk_size=5).item() == pytest.approx(reference, rel=1e-9)
    assert M.variance_ratio(h, y, chunk_size=5).item() == pytest.approx(_dense_variance_ratio(x, labels), rel=1e-10)


# ---------------------------------------------------------------- (d) invariances of every cluster metric

METRICS = {
    "r2": lambda h, y: M.class_separation_r2(h, y, chunk_size=7),
    "nc1": lambda h, y: M.nc1(h, y, chunk_size=7),
    "variance_ratio": lambda h, y: M.variance_ratio(h, y, chunk_size=7),
    "cdnv": lambda h, y: M.cdnv(h, y, chunk_size=7),
    "davies_bouldin": lambda h, y: M.davies_bouldin_score(h, y, chunk_size=7),
    "calinski_harabasz": lambda h, y: M.calinski_harabasz_score(h, y, chunk_size=7),
    "silhouette": lambda h, y: M.silhouette_score(h, y, chunk_size=16),
    "stability": lambda h, y: M.stability(h, y, chunk_size=7),
}
# Class separation R^2 uses the cosine distance 1 - cos(h_i, h_j), which depends on where the
# origin is: it is NOT shift invariant (checked below). Every other metric only sees differences
# h_i - h_j or h_i - mu_k.
SHIFT_INVARIANT = sorted(set(METRICS) - {"r2"})
# Stability S = 1 - mean within-class variance is not scale invariant: 1 - S scales by c^2.
SCALE_INVARIANT = sorted(set(METRICS) - {"stability"})

SIZES = (3, 12, 30, 7, 48)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    return _imbalanced(7, SIZES, 6)


def _value(name: str, h: torch.Tensor, y: torch.Tensor) -> float:
    return METRICS[name](h, y).item()


@pytest.mark.parametrize("name", SHIFT_INVARIANT)
def test_shift_invariance(name: str) -> None:
    h, y = _data()
    g = torch.Generator().manual_seed(1)
    plain = _value(name, h, y)
    for shift in (3.0, 50.0 * torch.randn(h.shape[1], generator=g, dtype=torch.float64) + 20.0):
        assert _value(name, h + shift, y) == pytest.approx(plain, rel=1e-9, abs=1e-12), shift


def test_r2_is_not_shift_invariant() -> None:
    # Pins the definition: R^2 must not centre the features itself.
    h, y = _data()
    plain = _value("r2", h, y)
    assert abs(_value("r2", h + 3.0, y) - plain) > 1e-2


@pytest.mark.parametrize("name", SCALE_INVARIANT)
@pytest.mark.parametrize("c", [1e-3, 7.5, 1e4])
def test_scale_invariance(name: str, c: float) -> None:
    h, y = _data()
    assert _value(name, c * h, y) == pytest.approx(_value(name, h, y), rel=1e-9)


@pytest.mark.parametrize("c", [1e-3, 7.5, 1e4])
def test_stability_scales_with_c_squared(c: float) -> None:
    h, y = _data()
    assert 1 - _value("stability", c * h, y) == pytest.approx(c**2 * (1 - _value("stability", h, y)), rel=1e-9)


def test_r2_per_sample_scale_invariance() -> None:
    # Cosine distance ignores each vector's own positive scale; no other metric does.
    h, y = _data()
    c = torch.rand(h.shape[0], 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 10 + 0.1
    assert _value("r2", c * h, y) == pytest.approx(_value("r2", h, y), rel=1e-9)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_rotation_invariance(name: str) -> None:
    # An orthogonal map about the origin keeps distances, cosines and Tr(Sigma_W Sigma_B^+).
    h, y = _data()
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(h.shape[1], h.shape[1], generator=g, dtype=torch.float64))
    assert _value(name, h @ q, y) == pytest.approx(_value(name, h, y), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_sample_permutation_invariance(name: str) -> None:
    h, y = _data()
    perm = torch.randperm(h.shape[0], generator=torch.Generator().manual_seed(4))
    assert _value(name, h[perm], y[perm]) == pytest.approx(_value(name, h, y), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_class_relabelling_invariance(name: str) -> None:
    # A permutation of the classes onto non-contiguous label values, which changes their sorted order.
    h, y = _data()
    mapping = torch.tensor([40, 3, 100, 17, 8])
    assert _value(name, h, mapping[y]) == pytest.approx(_value(name, h, y), rel=1e-10, abs=1e-12)


# ---------------------------------------------------------------- scikit-learn on imbalanced classes


@pytest.mark.parametrize("chunk_size", [1, 16, None])
def test_sklearn_scores_on_imbalanced_classes(chunk_size: int | None) -> None:
    h, y = _imbalanced(11, (1, 4, 60, 9, 25, 2), 5, spread=1.5)  # with a singleton class
    x, labels = h.numpy(), y.numpy()
    assert M.silhouette_score(h, y, chunk_size=chunk_size).item() == pytest.approx(
        skm.silhouette_score(x, labels), rel=1e-9, abs=1e-12
    )
    assert M.davies_bouldin_score(h, y, chunk_size=chunk_size).item() == pytest.approx(
        skm.davies_bouldin_score(x, labels), rel=1e-9
    )
    assert M.calinski_harabasz_score(h, y, chunk_size=chunk_size).item() == pytest.approx(
        skm.calinski_harabasz_score(x, labels), rel=1e-9
    )
