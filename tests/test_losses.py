"""Losses against independent references: PyTorch's label_smoothing, hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F

from kd_ls.losses import LabelSmoothingLoss, distillation_loss, label_smoothing_cross_entropy


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 10, generator=g) * 3, torch.randint(0, 10, (32,), generator=g)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.3, 0.75])
def test_uniform_equals_pytorch_label_smoothing(batch, alpha):
    logits, y = batch
    ours = label_smoothing_cross_entropy(logits, y, alpha, "uniform")
    ref = F.cross_entropy(logits, y, label_smoothing=alpha)
    assert torch.allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.4])
def test_others_equals_uniform_with_rescaled_alpha(batch, alpha):
    logits, y = batch
    k = logits.shape[1]
    ours = label_smoothing_cross_entropy(logits, y, alpha, "others")
    ref = F.cross_entropy(logits, y, label_smoothing=alpha * k / (k - 1))
    assert torch.allclose(ours, ref, atol=1e-6)
    # and it is not the same as uniform at the same alpha (the difference matters for K=10)
    assert not torch.allclose(ours, label_smoothing_cross_entropy(logits, y, alpha, "uniform"), atol=1e-4)


def test_others_hand_computed():
    # K=3, true class 0, alpha=0.3: targets (0.7, 0.15, 0.15)
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    logp = torch.log_softmax(logits, -1)[0]
    expected = -(0.7 * logp[0] + 0.15 * logp[1] + 0.15 * logp[2])
    assert torch.allclose(label_smoothing_cross_entropy(logits, torch.tensor([0]), 0.3, "others"), expected)


def test_adaptive_uses_own_confidence_without_gradient(batch):
    logits, y = batch
    logits = logits.clone().requires_grad_(True)
    alpha = 0.5
    loss = label_smoothing_cross_entropy(logits, y, alpha, "adaptive")
    p_true = torch.softmax(logits.detach(), -1).gather(1, y[:, None]).squeeze(1)
    ref = torch.stack([
        F.cross_entropy(logits[i : i + 1], y[i : i + 1], label_smoothing=float(alpha * p_true[i] * 10 / 9))
        for i in range(len(y))
    ]).mean()
    assert torch.allclose(loss, ref, atol=1e-6)
    loss.backward()  # the eps_i carry no gradient: d/dlogits is softmax - target with fixed target
    eps = alpha * p_true
    target = (1 - eps)[:, None] * F.one_hot(y, 10) + (eps / 9)[:, None] * (1 - F.one_hot(y, 10))
    expected_grad = (torch.softmax(logits.detach(), -1) - target) / len(y)
    assert torch.allclose(logits.grad, expected_grad, atol=1e-6)


def test_ignore_index_rows_contribute_nothing(batch):
    logits, y = batch
    y_masked = y.clone()
    y_masked[::2] = -100
    for convention in ("uniform", "others", "adaptive"):
        ours = label_smoothing_cross_entropy(logits, y_masked, 0.2, convention)
        ref = label_smoothing_cross_entropy(logits[1::2], y[1::2], 0.2, convention)
        assert torch.allclose(ours, ref, atol=1e-6)
    ref = F.cross_entropy(logits, y_masked, label_smoothing=0.2, ignore_index=-100)
    assert torch.allclose(label_smoothing_cross_entropy(logits, y_masked, 0.2), ref, atol=1e-6)


def test_online_label_smoothing_targets_follow_previous_epoch():
    loss_fn = LabelSmoothingLoss(3, convention="online")
    logits = torch.tensor([[4.0, 0.0, 0.0], [3.0, 1.0, 0.0], [0.0, 0.0, 5.0], [0.0, 5.0, 0.0]])
    y = torch.tensor([0, 0, 2, 0])  # the last one is misclassified and must not count
    first = loss_fn(logits, y)
    expected_first = 0.5 * F.cross_entropy(logits, y) + 0.5 * -(torch.log_softmax(logits, -1).mean(-1)).mean()
    assert torch.allclose(first, expected_first, atol=1e-6)
    loss_fn.end_epoch()
    p = torch.softmax(logits, -1)
    assert torch.allclose(loss_fn.soft_targets[0], (p[0] + p[1]) / 2, atol=1e-6)
    assert torch.allclose(loss_fn.soft_targets[2], p[2], atol=1e-6)
    assert torch.allclose(loss_fn.soft_targets[1], torch.full((3,), 1 / 3))  # no correct sample: uniform
    second = loss_fn(logits, y)
    soft = -(loss_fn.soft_targets[y] * torch.log_softmax(logits, -1)).sum(-1).mean()
    assert torch.allclose(second, 0.5 * F.cross_entropy(logits, y) + 0.5 * soft, atol=1e-6)


def test_distillation_loss_hand_computed():
    s = torch.tensor([[1.0, 0.0]])
    t = torch.tensor([[0.0, 2.0]])
    y = torch.tensor([0])
    T, beta = 2.0, 0.75
    pt = [math.exp(0) / (math.exp(0) + math.exp(1)), math.exp(1) / (math.exp(0) + math.exp(1))]
    ps = [math.exp(0.5) / (math.exp(0.5) + 1), 1 / (math.exp(0.5) + 1)]
    kl = sum(a * math.log(a / b) for a, b in zip(pt, ps))
    ce = -math.log(math.exp(1) / (math.exp(1) + 1))
    expected = (1 - beta) * ce + beta * T**2 * kl
    assert distillation_loss(s, t, y, T, beta).item() == pytest.approx(expected, rel=1e-6)
    # only the teacher softened: student at temperature 1, no T^2 factor
    ps1 = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]
    kl1 = sum(a * math.log(a / b) for a, b in zip(pt, ps1))
    assert distillation_loss(s, t, y, T, 1.0, soften_student=False).item() == pytest.approx(kl1, rel=1e-6)


def test_distillation_loss_zero_when_logits_agree_and_batchmean(batch):
    logits, y = batch
    assert distillation_loss(logits, logits.clone(), y, 4.0, 1.0).abs().item() < 1e-6
    teacher = logits.flip(0)
    per_sample = [distillation_loss(logits[i : i + 1], teacher[i : i + 1], y[i : i + 1], 3.0, 1.0) for i in range(32)]
    assert torch.allclose(distillation_loss(logits, teacher, y, 3.0, 1.0), torch.stack(per_sample).mean(), atol=1e-5)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda l, y: label_smoothing_cross_entropy(l, y, alpha=1.0), r"alpha must be in \[0, 1\)"),
        (lambda l, y: label_smoothing_cross_entropy(l, y, alpha=-0.1), r"alpha must be in \[0, 1\)"),
        (lambda l, y: label_smoothing_cross_entropy(l, y, convention="foo"), "convention must be one of uniform, others, adaptive, online"),
        (lambda l, y: distillation_loss(l, l, y, temperature=0.0), "temperature must be > 0"),
        (lambda l, y: distillation_loss(l, l, y, beta=1.5), r"beta must be in \[0, 1\]"),
        (lambda l, y: LabelSmoothingLoss(10, alpha=2.0), r"alpha must be in \[0, 1\)"),
    ],
)
def test_bad_arguments_name_the_argument_and_range(batch, call, match):
    with pytest.raises(ValueError, match=match):
        call(*batch)


@pytest.mark.parametrize("convention", ["uniform", "others", "adaptive"])
def test_module_at_alpha_zero_is_plain_cross_entropy(batch, convention):
    logits, y = batch
    y = y.clone()
    y[0] = -100
    ref = label_smoothing_cross_entropy(logits, y, 0.0, convention)  # explicit targets
    assert torch.allclose(LabelSmoothingLoss(10, 0.0, convention)(logits, y), ref, atol=1e-6)
