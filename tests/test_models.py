"""Tests for kd_ls.models: registry, ClassifierNet interface, sizes, errors, determinism."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kd_ls.models import ClassifierNet, create_model, list_models

IMG = (3, 32, 32)

# (name, input_shape, batch, kwargs)
CASES = [
    ("mlp", (1, 40), 4, {}),
    ("mlp", (1, 8, 8), 4, {"widths": (800, 800), "dropout": 0.1}),
    ("conv1d", (1, 40), 4, {}),
    ("alexnet_cifar", IMG, 4, {}),
    ("fastnet", IMG, 4, {}),
    ("fastnet", (1, 28, 28), 2, {"widths": (16, 32), "stem_width": 8, "scale": 1.0}),
    ("fastnet_small", IMG, 4, {}),
    ("fastnet_small", (3, 8, 8), 2, {}),
    ("resnet20", IMG, 4, {}),
    ("resnet20", (1, 8, 8), 4, {}),
    ("resnet32", IMG, 4, {}),
    ("resnet44", IMG, 4, {}),
    ("resnet56", IMG, 4, {}),
    ("resnet110", IMG, 2, {}),
    ("resnet8x4", IMG, 4, {}),
    ("resnet32x4", IMG, 2, {}),
    ("wrn_16_2", IMG, 2, {}),
    ("wrn_40_1", (1, 8, 8), 2, {"dropout": 0.3}),
    ("tv:resnet18", IMG, 4, {}),
    ("tv:resnet18", (1, 32, 32), 2, {}),
    ("tv:mobilenet_v3_small", IMG, 4, {}),
]


def _case_id(case) -> str:
    name, shape, _, kwargs = case
    return f"{name}-{'x'.join(map(str, shape))}" + ("-kw" if kwargs else "")


def test_every_registered_model_is_covered():
    assert {"mlp", "conv1d", "alexnet_cifar", "resnet20", "resnet8x4", "resnet32x4"} <= set(list_models())
    assert list_models() == sorted(list_models())
    assert set(list_models()) <= {case[0] for case in CASES}


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


@pytest.mark.parametrize("name", ["resnet20", "wrn_16_2", "alexnet_cifar", "resnet8x4", "fastnet", "fastnet_small"])
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
    model = create_model("wrn_16_2", 10, IMG, dropout=0.3).train()
    loss = model(torch.randn(2, *IMG)).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_conv1d_accepts_unbatched_channel_dim():
    torch.manual_seed(0)
    model = create_model("conv1d", 10, (1, 40)).eval()
    x = torch.randn(3, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.unsqueeze(1)))
    assert sum(p.numel() for p in model.parameters()) == 99_114


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name, published",
    [
        ("resnet20", 0.27e6),  # He et al. 2016, Table 6
        ("resnet56", 0.85e6),
        ("resnet110", 1.7e6),
        ("wrn_40_2", 2.2e6),  # RepDistiller / CRD (Tian et al. 2020)
        ("resnet8x4", 1.23e6),
        ("resnet32x4", 7.43e6),
        ("wrn_28_10", 36.5e6),  # Zagoruyko & Komodakis 2016
    ],
)
def test_parameter_counts_match_papers(name, published):
    count = _num_params(create_model(name, 10, IMG))
    assert abs(count - published) / published < 0.05, (name, count)


def test_mlp_sizes():
    # Müller et al. MNIST teacher 784-1200-1200-10 and student 784-800-800-10
    assert _num_params(create_model("mlp", 10, (1, 28, 28))) == 784 * 1200 + 1200 + 1200 * 1200 + 1200 + 12010
    student = create_model("mlp", 10, (784,), widths=(800, 800))
    assert student.num_features == 800
    assert _num_params(create_model("mlp", 10, (784,), widths=())) == 7850


def test_unknown_name_lists_allowed_names():
    with pytest.raises(ValueError) as info:
        create_model("foo", 10, IMG)
    msg = str(info.value)
    assert "model name 'foo'" in msg and "\n" not in msg
    for allowed in [*list_models(), "wrn_<depth>_<width>", "tv:<torchvision name>"]:
        assert allowed in msg


@pytest.mark.parametrize("name", ["wrn_15_2", "wrn_4_1", "wrn_41_2"])
def test_invalid_wrn_depth(name):
    with pytest.raises(ValueError, match=r"depth \d+ \(model name 'wrn_\d+_\d+'\) is invalid; depth must be 6n\+4"):
        create_model(name, 10, IMG)


def test_invalid_wrn_width():
    with pytest.raises(ValueError, match="width 0"):
        create_model("wrn_16_0", 10, IMG)


def test_unknown_torchvision_name():
    with pytest.raises(ValueError, match=r"'tv:nope'.*torchvision\.models\.list_models"):
        create_model("tv:nope", 10, IMG)


def test_torchvision_without_linear_classifier_is_rejected():
    with pytest.raises(ValueError, match=r"squeezenet1_1.*nn\.Linear.*Conv2d"):
        create_model("tv:squeezenet1_1", 10, IMG)


@pytest.mark.parametrize(
    "name, shape, kwargs",
    [
        ("resnet20", (32, 32), {}),
        ("conv1d", (1, 8, 8), {}),
        ("resnet20", IMG, {"shortcut": "C"}),
        ("mlp", (1, 40), {"dropout": 1.0}),
    ],
)
def test_invalid_arguments(name, shape, kwargs):
    with pytest.raises(ValueError):
        create_model(name, 10, shape, **kwargs)


@pytest.mark.parametrize("num_classes", [0, -1, 2.0, True])
def test_invalid_num_classes(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        create_model("mlp", num_classes, (1, 40))


@pytest.mark.parametrize(
    "name, shape",
    [("mlp", (1, 40)), ("conv1d", (1, 40)), ("alexnet_cifar", IMG), ("resnet20", IMG),
     ("resnet8x4", IMG), ("wrn_16_2", IMG), ("tv:resnet18", (1, 32, 32))],
)
def test_same_seed_same_weights(name, shape):
    def weights(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return create_model(name, 10, shape).state_dict()

    first, second, other = weights(0), weights(0), weights(1)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
