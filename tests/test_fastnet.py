"""Tests for the airbench-style fast CIFAR nets (kd_ls.models.fastnet): the ClassifierNet
interface checks of tests/test_models.py, plus sizes, options and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kd_ls.models import ClassifierNet, create_model, list_models

IMG = (3, 32, 32)

# (name, input_shape, batch, kwargs)
CASES = [
    ("fastnet", IMG, 4, {}),
    ("fastnet", (1, 28, 28), 2, {}),
    ("fastnet", IMG, 2, {"widths": (16, 32), "stem_width": 8, "scale": 1.0}),
    ("fastnet_small", IMG, 4, {}),
    ("fastnet_small", (3, 8, 8), 2, {}),
]


def _case_id(case) -> str:
    name, shape, _, kwargs = case
    return f"{name}-{'x'.join(map(str, shape))}" + ("-kw" if kwargs else "")


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered():
    assert {"fastnet", "fastnet_small"} <= set(list_models())


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_classifier_interface(case):
    name, shape, batch, kwargs = case
    torch.manual_seed(0)
    model = create_model(name, 10, shape, **kwargs).eval()
    assert isinstance(model, ClassifierNet)
    assert model.num_classes == 10
    x = torch.randn(batch, *shape)

    captured = []
    hook = model.get_classifier().register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    with torch.no_grad():
        logits = model(x)
    hook.remove()
    with torch.no_grad():
        feats = model.forward_features(x)
        recomposed = model.get_classifier()(feats)

    assert logits.shape == (batch, 10)
    assert isinstance(model.get_classifier(), nn.Linear)
    assert feats.shape == (batch, model.num_features)
    assert model.get_classifier().in_features == model.num_features
    assert torch.isfinite(logits).all()
    # features are exactly the classifier input seen during forward, and recompose the logits
    assert len(captured) == 1
    torch.testing.assert_close(captured[0], feats, atol=1e-5, rtol=0)
    assert torch.allclose(recomposed, logits, atol=1e-5)


def test_num_features_follow_widths():
    assert create_model("fastnet", 10, IMG).num_features == 256
    assert create_model("fastnet_small", 10, IMG).num_features == 128
    assert create_model("fastnet", 100, IMG, widths=(32, 48, 96)).num_features == 96
    assert create_model("fastnet", 100, IMG).num_classes == 100


def test_sizes():
    assert abs(_num_params(create_model("fastnet", 10, IMG)) - 1.97e6) / 1.97e6 < 0.01
    assert abs(_num_params(create_model("fastnet_small", 10, IMG)) - 0.29e6) / 0.29e6 < 0.02
    assert _num_params(create_model("fastnet_small", 10, IMG)) < _num_params(create_model("fastnet", 10, IMG)) / 5


@pytest.mark.parametrize("name", ["fastnet", "fastnet_small"])
def test_channels_last_matches_contiguous(name):
    torch.manual_seed(0)
    model = create_model(name, 10, IMG).eval()
    x = torch.randn(2, *IMG)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_train_mode_backward():
    torch.manual_seed(0)
    model = create_model("fastnet_small", 10, IMG).train()
    loss = model(torch.randn(4, *IMG)).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_same_seed_same_weights():
    def weights(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return create_model("fastnet", 10, IMG).state_dict()

    first, second, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((32, 32), {}),  # not (C, H, W)
        ((3, 4, 4), {}),  # three halvings need H, W >= 8
        (IMG, {"widths": ()}),
        (IMG, {"widths": (64, 0)}),
        (IMG, {"stem_width": 0}),
        (IMG, {"scale": 0.0}),
    ],
)
def test_invalid_arguments(shape, kwargs):
    with pytest.raises(ValueError):
        create_model("fastnet", 10, shape, **kwargs)
