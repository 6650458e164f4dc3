"""Tests for kd_ls.metrics against independent references: scikit-learn, hand-computed values
on tiny inputs, and brute-force numpy loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from sklearn.datasets import make_blobs

from kd_ls import metrics as M
from kd_ls.plots.calibration import plot_reliability_diagram
from kd_ls.plots.projection import plot_muller_projection
from kd_ls.metrics._common import exact_fp32_matmul

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]


def _random_clusters(seed: int, n: int = 240, d: int = 6, k: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    centres = 1.5 * torch.randn(k, d, generator=g, dtype=torch.float64)
    h = torch.randn(n, d, generator=g, dtype=torch.float64) + centres[y]
    return h, y


def _blobs(singleton: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = make_blobs(n_samples=300, n_features=5, centers=4, cluster_std=1.5, random_state=3)
    if singleton:
        x = np.vstack([x, np.full((1, 5), 2.0)])
        y = np.append(y, 9)
    return torch.from_numpy(x), torch.from_numpy(y)


# A 2-class, 2-points-per-class example in 2-D worked out by hand:
# class 0 = (1, 1), (3, -1) with mean (2, 0); class 1 = (-1, 1), (-3, -1) with mean (-2, 0).
# Residuals (-1, 1), (1, -1), (1, 1), (-1, -1) give Sigma_W = I; mu_G = 0, so Sigma_B = diag(4, 0)
# and Sigma_B^+ = diag(1/4, 0): NC1 = Tr(Sigma_B^+) / 2 = 1/8, Tr(Sigma_W) / Tr(Sigma_B) = 2/4,
# var_0 = var_1 = 2 and |mu_0 - mu_1|^2 = 16, so CDNV = 4 / 32.
TINY_H = torch.tensor([[1.0, 1.0], [3.0, -1.0], [-1.0, 1.0], [-3.0, -1.0]], dtype=torch.float64)
TINY_Y = torch.tensor([0, 0, 1, 1])


# ---------------------------------------------------------------- scikit-learn equivalents


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("data", ["random", "blobs", "blobs+singleton"])
def test_sklearn_equivalents(data: str, dtype: torch.dtype) -> None:
    if data == "random":
        g = torch.Generator().manual_seed(0)
        h = torch.randn(200, 7, generator=g, dtype=torch.float64)
        y = torch.randint(0, 5, (200,), generator=g) * 3  # non-contiguous label values
    else:
        h, y = _blobs(singleton=data.endswith("singleton"))
    h = h.to(dtype)
    x, labels = h.numpy(), y.numpy()
    assert M.silhouette_score(h, y, chunk_size=17).item() == pytest.approx(
        skm.silhouette_score(x, labels), abs=1e-4
    )
    assert M.davies_bouldin_score(h, y, chunk_size=17).item() == pytest.approx(
        skm.davies_bouldin_score(x, labels), abs=1e-4
    )
    assert M.calinski_harabasz_score(h, y, chunk_size=17).item() == pytest.approx(
        skm.calinski_harabasz_score(x, labels), rel=1e-6, abs=1e-4
    )


def test_silhouette_singleton_and_duplicates_match_sklearn() -> None:
    # A singleton cluster scores 0, and coincident points (a = b = 0) score 0, as in sklearn.
    h = torch.tensor([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [5.0, 5.0], [9.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 2])
    assert M.silhouette_score(h, y, chunk_size=2).item() == pytest.approx(
        skm.silhouette_score(h.numpy(), y.numpy()), abs=1e-12
    )
    assert M.silhouette_score(h, y).item() == pytest.approx(4 / 5, abs=1e-12)


@pytest.mark.parametrize(
    "metric", [M.silhouette_score, M.davies_bouldin_score, M.calinski_harabasz_score, M.nc1, M.cdnv]
)
def test_one_class_is_rejected(metric) -> None:
    with pytest.raises(ValueError):
        metric(torch.randn(10, 3), torch.zeros(10, dtype=torch.long))


# ---------------------------------------------------------------- hand-computed cluster metrics


def test_class_separation_r2_by_hand() -> None:
    # Class 0 = e1, e2; class 1 = -e1, -e2. Within each class the ordered-pair distances are
    # 0, 1, 1, 0 (mean 1/2, diagonal included); across the classes 2, 1, 1, 2 (mean 3/2).
    # mean_within = 1/2, mean_overall = (1/2 + 1/2 + 3/2 + 3/2) / 4 = 1, so R^2 = 1 - 1/2.
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    assert M.class_separation_r2(h, TINY_Y).item() == pytest.approx(0.5, abs=1e-12)
    # Scaling a feature vector leaves cosine distances unchanged.
    assert M.class_separation_r2(h * torch.tensor([[3.0], [0.5], [2.0], [7.0]]), TINY_Y).item() == pytest.approx(0.5)


def test_class_separation_r2_brute_force() -> None:
    h, y = _random_clusters(1, n=60, d=5, k=3)
    y[:5] = 2  # imbalanced classes
    x = h.numpy()
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    classes = np.unique(y.numpy())
    members = [np.flatnonzero(y.numpy() == c) for c in classes]

    def block_mean(a: np.ndarray, b: np.ndarray) -> float:
        total = 0.0
        for i in a:
            for j in b:
                total += 1.0 - float(unit[i] @ unit[j])
        return total / (len(a) * len(b))

    within = np.mean([block_mean(m, m) for m in members])
    overall = np.mean([block_mean(a, b) for a in members for b in members])
    assert M.class_separation_r2(h, y, chunk_size=7).item() == pytest.approx(1 - within / overall, abs=1e-10)


def test_nc1_variance_ratio_cdnv_by_hand() -> None:
    assert M.nc1(TINY_H, TINY_Y).item() == pytest.approx(1 / 8, abs=1e-12)
    assert M.variance_ratio(TINY_H, TINY_Y).item() == pytest.approx(1 / 2, abs=1e-12)
    assert M.cdnv(TINY_H, TINY_Y).item() == pytest.approx(1 / 8, abs=1e-12)


def test_nc1_variance_ratio_cdnv_brute_force() -> None:
    # Imbalanced classes, so mu_G (mean of class means) differs from the sample mean.
    h, y = _random_clusters(2, n=90, d=8, k=4)
    y[:30] = 0
    x, labels = h.numpy(), y.numpy()
    classes = np.unique(labels)
    means = np.stack([x[labels == c].mean(0) for c in classes])
    mu_g = means.mean(0)
    residual = x - means[np.searchsorted(classes, labels)]
    sigma_w = residual.T @ residual / len(x)
    sigma_b = (means - mu_g).T @ (means - mu_g) / len(classes)
    k = len(classes)
    variances = [np.mean(np.sum((x[labels == c] - means[i]) ** 2, axis=1)) for i, c in enumerate(classes)]
    pairs = [
        (variances[i] + variances[j]) / (2 * np.sum((means[i] - means[j]) ** 2))
        for i in range(k)
        for j in range(i + 1, k)
    ]
    assert M.nc1(h, y, chunk_size=13).item() == pytest.approx(np.trace(sigma_w @ np.linalg.pinv(sigma_b)) / k, rel=1e-9)
    assert M.variance_ratio(h, y).item() == pytest.approx(np.trace(sigma_w) / np.trace(sigma_b), rel=1e-10)
    assert M.cdnv(h, y).item() == pytest.approx(np.mean(pairs), rel=1e-10)


def test_stability_by_hand() -> None:
    # Class 0: (1, 0), (1/2, 1/2) with mean (3/4, 1/4), squared deviations 1/8 each;
    # class 1: (0, 1) twice, deviation 0. S = 1 - (1/8 + 0) / 2.
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.0, 1.0]])
    assert M.stability(p, TINY_Y).item() == pytest.approx(0.9375, abs=1e-12)


# ---------------------------------------------------------------- calibration

# Confidences 1.0 (right), 1.0 (wrong), 0.65 (right), 0.75 (wrong), chosen away from bin edges.
# With 10 or 15 bins they fall in the last bin (2 samples, acc 1/2, conf 1), one bin with acc 1 and
# conf 0.65, and one with acc 0 and conf 0.75:
# ECE = 2/4 * 0.5 + 1/4 * 0.35 + 1/4 * 0.75 = 0.525; MCE = 0.75.
# Dropping conf == 1.0 into a hidden extra bin would give ECE = 0.275 instead.
CAL_PROBS = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.65, 0.35], [0.25, 0.75]], dtype=torch.float64)
CAL_LABELS = torch.tensor([0, 1, 0, 0])


@pytest.mark.parametrize("n_bins", [10, 15])
def test_ece_mce_by_hand_with_saturated_confidence(n_bins: int) -> None:
    assert M.ece(CAL_PROBS, CAL_LABELS, n_bins=n_bins).item() == pytest.approx(0.525, abs=1e-12)
    assert M.mce(CAL_PROBS, CAL_LABELS, n_bins=n_bins).item() == pytest.approx(0.75, abs=1e-12)
    data = M.reliability_diagram(CAL_PROBS, CAL_LABELS, n_bins=n_bins)
    assert data["count"][-1].item() == 2
    assert data["count"].sum().item() == 4
    assert data["accuracy"][-1].item() == pytest.approx(0.5)
    assert data["confidence"][-1].item() == pytest.approx(1.0)
    assert data["bin_upper"][-1].item() == 1.0 and data["bin_lower"][0].item() == 0.0
    empty = data["count"] == 0
    assert torch.isnan(data["accuracy"][empty]).all() and torch.isnan(data["confidence"][empty]).all()
    assert data["ece"].item() == pytest.approx(0.525, abs=1e-12)


def test_ece_default_bins_and_zero_confidence() -> None:
    assert M.ece(CAL_PROBS, CAL_LABELS).item() == pytest.approx(0.525, abs=1e-12)
    data = M.reliability_diagram(torch.zeros(1, 3), torch.tensor([1]), n_bins=4)
    assert data["count"].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_plot_reliability_diagram(tmp_path) -> None:
    figure = plot_reliability_diagram(CAL_PROBS, CAL_LABELS, path=tmp_path / "rel.png", title="t")
    assert (tmp_path / "rel.png").stat().st_size > 0
    assert figure.axes[0].get_title() == "t"
    assert plot_reliability_diagram(M.reliability_diagram(CAL_PROBS, CAL_LABELS)) is not None


def test_nll_by_hand() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0]])
    # p(label) = 3/4 and 4/5.
    expected = (math.log(4 / 3) + math.log(5 / 4)) / 2
    assert M.nll(logits, torch.tensor([1, 0])).item() == pytest.approx(expected, abs=1e-7)


def test_fit_temperature_recovers_known_temperature() -> None:
    g = torch.Generator().manual_seed(0)
    z = 4.0 * torch.randn(20000, 10, generator=g)
    labels = torch.multinomial(torch.softmax(z / 2.5, dim=1), 1, generator=g).squeeze(1)
    t_star = M.fit_temperature(z, labels)
    assert isinstance(t_star, float)
    assert abs(t_star - 2.5) < 0.1
    assert M.fit_temperature(z, labels) == t_star
    # It is the NLL minimiser: nudging T either way does not lower the NLL.
    best = M.nll(z / t_star, labels).item()
    assert best <= M.nll(z / (t_star * 1.01), labels).item()
    assert best <= M.nll(z / (t_star / 1.01), labels).item()


def test_fit_temperature_hits_bounds() -> None:
    z = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    assert M.fit_temperature(z, torch.tensor([0, 1]), t_range=(0.5, 4.0)) == 0.5  # perfect: T -> 0
    assert M.fit_temperature(z, torch.tensor([1, 0]), t_range=(0.5, 4.0)) == 4.0  # always wrong


# ---------------------------------------------------------------- information


def test_smoothness_index_by_hand() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.6, 0.2]]))
    labels = torch.tensor([0, 1])
    # Off-true mass 0.5 and 0.4, mean 0.45, times K / (K - 1) = 3 / 2.
    assert M.smoothness_index(logits, labels).item() == pytest.approx(0.675, abs=1e-7)
    assert M.smoothness_index(2.0 * logits, labels, temperature=2.0).item() == pytest.approx(0.675, abs=1e-7)
    one_hot = 100.0 * torch.eye(5)
    assert M.smoothness_index(one_hot, torch.arange(5)).item() == pytest.approx(0.0, abs=1e-30)
    assert M.smoothness_index(one_hot, torch.arange(5)).item() > 0  # not rounded away
    assert M.smoothness_index(torch.zeros(4, 5), torch.arange(4)).item() == pytest.approx(1.0, abs=1e-12)


def test_mutual_information_by_hand() -> None:
    # mu = (0, 4); deviations +-1, so sigma^2 = 1. View v of example x contributes
    # -(v - mu_x)^2 / 2 - log((exp(-(v - 0)^2 / 2) + exp(-(v - 4)^2 / 2)) / 2).
    d = torch.tensor([[-1.0, 1.0], [3.0, 5.0]])

    def term(v: float, mu_x: float) -> float:
        return -((v - mu_x) ** 2) / 2 - math.log((math.exp(-(v**2) / 2) + math.exp(-((v - 4) ** 2) / 2)) / 2)

    expected = (term(-1, 0) + term(1, 0) + term(3, 4) + term(5, 4)) / 4
    assert M.mutual_information(d).item() == pytest.approx(expected, abs=1e-12)


def test_mutual_information_limits() -> None:
    g = torch.Generator().manual_seed(0)
    n = 50
    shared = torch.randn(1, 8, generator=g).expand(n, 8)
    assert M.mutual_information(shared[:, torch.randperm(8, generator=g)]).item() == pytest.approx(0.0, abs=1e-12)
    same_distribution = torch.randn(n, 4000, generator=g)
    assert M.mutual_information(same_distribution).item() < 0.01
    separated = 10.0 * torch.arange(n, dtype=torch.float64)[:, None] + 1e-3 * torch.randn(n, 5, generator=g)
    assert M.mutual_information(separated, chunk_size=7).item() == pytest.approx(math.log(n), abs=1e-6)
    exact_means = torch.arange(n, dtype=torch.float64)[:, None].expand(n, 5)  # sigma^2 = 0
    assert M.mutual_information(exact_means).item() == pytest.approx(math.log(n), abs=1e-12)
    for seed in range(5):
        gen = torch.Generator().manual_seed(seed)
        scale = 3 * torch.rand(30, 1, generator=gen)
        mixed = torch.randn(30, 5, generator=gen) * scale + torch.randn(30, 1, generator=gen)
        value = M.mutual_information(mixed).item()
        assert 0.0 <= value <= math.log(30)


def test_logit_difference_views() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    model.train()
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    plain = M.logit_difference_views(model, x, (2, 0), augment=lambda b: b, n_views=3, batch_size=4)
    assert model.training  # mode restored
    with torch.no_grad():
        model.eval()
        logits = model(x)
        model.train()
    expected = (logits[:, 2] - logits[:, 0])[:, None].expand(10, 3)
    assert plain.shape == (10, 3)
    torch.testing.assert_close(plain, expected)

    def noisy(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return batch + torch.randn(batch.shape, generator=generator)

    first = M.logit_difference_views(model, x, (2, 0), noisy, generator=torch.Generator().manual_seed(5))
    again = M.logit_difference_views(model, x, (2, 0), noisy, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(first, again)
    assert first.shape == (10, 5) and not torch.allclose(first[:, 0], first[:, 1])


# ---------------------------------------------------------------- projection


def test_muller_projection_preserves_template_geometry(tmp_path) -> None:
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(5, 6, generator=g, dtype=torch.float64)
    bias = torch.ones(5, dtype=torch.float64)  # so that [w_c | 1] is both a template and a feature
    classes = (3, 0, 4)
    origin, basis = M.muller_basis(weight, bias, classes)
    torch.testing.assert_close(basis @ basis.T, torch.eye(2, dtype=torch.float64))
    points, labels = M.muller_projection(weight, torch.arange(5), weight, bias, classes=classes)
    assert labels.tolist() == [3, 0, 4]
    torch.testing.assert_close(points[0], torch.zeros(2, dtype=torch.float64))
    templates = torch.cat([weight, bias[:, None]], dim=1)[list(classes)]
    torch.testing.assert_close(torch.cdist(points, points), torch.cdist(templates, templates))
    # A feature-space component orthogonal to the plane does not move the projection.
    span, _ = torch.linalg.qr(basis[:, :6].T)
    normal = torch.randn(6, generator=g, dtype=torch.float64)
    normal -= span @ (span.T @ normal)
    shifted = weight.clone()
    shifted[3] += 5.0 * normal
    moved, _ = M.muller_projection(shifted, torch.arange(5), weight, bias, classes=classes)
    torch.testing.assert_close(moved, points)
    figure = plot_muller_projection(points, labels, class_names={3: "a", 0: "b", 4: "c"}, path=tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0 and figure.axes[0].get_legend() is not None


def test_muller_projection_sampling() -> None:
    h, y = _random_clusters(4, n=300, d=6, k=4)
    weight, bias = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    points, labels = M.muller_projection(h, y, weight, bias, classes=(0, 1, 2), per_class=20)
    assert points.shape == (60, 2)
    assert [int((labels == c).sum()) for c in (0, 1, 2)] == [20, 20, 20]
    a, _ = M.muller_projection(h, y, weight, bias, per_class=20, generator=torch.Generator().manual_seed(1))
    b, _ = M.muller_projection(h, y, weight, bias, per_class=20, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError):
        M.muller_basis(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), torch.zeros(3))


# ---------------------------------------------------------------- agreement


def test_agreement_and_kl() -> None:
    student = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 0.5], [3.0, 0.0, 0.0]])
    teacher = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 2.0]])
    assert M.agreement(student, teacher).item() == pytest.approx(1 / 3)
    p = torch.softmax(teacher.double() / 2.0, 1).numpy()
    q = torch.softmax(student.double() / 2.0, 1).numpy()
    expected = np.sum(p * np.log(p / q)) / 3
    assert M.kl_divergence(teacher, student, temperature=2.0).item() == pytest.approx(expected, abs=1e-12)
    assert M.kl_divergence(teacher, teacher).item() == pytest.approx(0.0, abs=1e-15)


# ---------------------------------------------------------------- dtype and device


def _all_metrics() -> dict[str, tuple]:
    h, y = _random_clusters(5, n=120, d=6, k=3)
    logits = 3.0 * torch.randn(120, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    labels = y.clone()
    probs = torch.softmax(logits, 1)
    diffs = torch.randn(40, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    diffs += torch.arange(40)[:, None] * 0.3
    weight, bias = logits[:4, :3].T.contiguous(), logits[4, :3].contiguous()
    return {
        "silhouette": (lambda a, b: M.silhouette_score(a, b, chunk_size=32), h, y),
        "davies_bouldin": (M.davies_bouldin_score, h, y),
        "calinski_harabasz": (M.calinski_harabasz_score, h, y),
        "r2": (M.class_separation_r2, h, y),
        "nc1": (M.nc1, h, y),
        "variance_ratio": (M.variance_ratio, h, y),
        "cdnv": (M.cdnv, h, y),
        "stability": (M.stability, probs, labels),
        "ece": (M.ece, probs, labels),
        "mce": (M.mce, probs, labels),
        "nll": (M.nll, logits, labels),
        "temperature": (lambda a, b: torch.tensor(M.fit_temperature(a, b)), logits, labels),
        "smoothness": (lambda a, b: M.smoothness_index(a, b, temperature=2.0), logits, labels),
        "mutual_information": (lambda a, _: M.mutual_information(a, chunk_size=16), diffs, None),
        "agreement": (M.agreement, logits, logits.flip(1)),
        "kl": (lambda a, b: M.kl_divergence(a, b, temperature=3.0), logits, logits.flip(1)),
        "projection": (lambda a, b: M.muller_projection(a, b, weight, bias, per_class=10)[0], h[:, :4], y),
    }


@pytest.mark.parametrize("name", sorted(_all_metrics()))
def test_float32_matches_float64(name: str) -> None:
    metric, first, second = _all_metrics()[name]
    exact = metric(first, second)
    if second is not None and second.is_floating_point():
        second = second.float()
    single = metric(first.float(), second)
    torch.testing.assert_close(single.double(), exact.double(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_devices(device: str) -> None:
    for name, (metric, first, second) in _all_metrics().items():
        on_cpu = metric(first, second)
        moved = metric(first.to(device), None if second is None else second.to(device))
        if name != "temperature":
            assert moved.device.type == device, name
        torch.testing.assert_close(moved.cpu(), on_cpu, rtol=1e-6, atol=1e-9, msg=name)
        moved32 = metric(first.float().to(device), None if second is None else second.to(device))
        torch.testing.assert_close(moved32.double().cpu(), on_cpu.double(), rtol=1e-4, atol=1e-5, msg=name)


def test_exact_fp32_matmul_restores_setting() -> None:
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    with exact_fp32_matmul(torch.device("cuda")):
        assert matmul.fp32_precision == "ieee"
    assert matmul.fp32_precision == before
    with exact_fp32_matmul(torch.device("cpu")):
        assert matmul.fp32_precision == before


def test_classification_metrics_match_torch_references() -> None:
    """The per-epoch summary (fast transposed softmax, rank-based top-5) against the obvious code."""
    from kd_ls.evaluation import classification_metrics

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3000, 10, generator=g) * 3
    labels = torch.randint(0, 10, (3000,), generator=g)
    out = classification_metrics(logits, labels)
    probs = torch.softmax(logits.double(), -1)
    top5 = logits.topk(5, dim=1).indices
    assert out["acc"] == pytest.approx((logits.argmax(1) == labels).double().mean().item(), abs=1e-12)
    assert out["acc5"] == pytest.approx((top5 == labels[:, None]).any(1).double().mean().item(), abs=1e-12)
    assert out["nll"] == pytest.approx(torch.nn.functional.cross_entropy(logits.double(), labels).item(), rel=1e-12)
    assert out["ece"] == pytest.approx(M.ece(probs, labels).item(), abs=1e-6)
    assert out["mce"] == pytest.approx(M.mce(probs, labels).item(), abs=1e-6)
    assert M.calibration_errors(probs, labels) == (M.ece(probs, labels), M.mce(probs, labels))
