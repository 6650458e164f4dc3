"""The airbench-style fast CIFAR nets (kd_ls.models.fastnet): sizes, options and errors.
The shared interface checks run in tests/test_models.py."""

from __future__ import annotations

import pytest
import torch

from kd_ls.models import create_model

IMG = (3, 32, 32)


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_num_features_follow_widths():
    assert create_model("fastnet", 10, IMG).num_features == 256
    assert create_model("fastnet_small", 10, IMG).num_features == 128
    assert create_model("fastnet", 100, IMG, widths=(32, 48, 96)).num_features == 96
    assert create_model("fastnet", 100, IMG).num_classes == 100


def test_sizes():
    assert abs(_num_params(create_model("fastnet", 10, IMG)) - 1.97e6) / 1.97e6 < 0.01
    assert abs(_num_params(create_model("fastnet_small", 10, IMG)) - 0.29e6) / 0.29e6 < 0.02
    assert _num_params(create_model("fastnet_small", 10, IMG)) < _num_params(create_model("fastnet", 10, IMG)) / 5


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
