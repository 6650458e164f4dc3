"""Wide ResNets ``wrn_<depth>_<width>`` (Zagoruyko & Komodakis 2016), CIFAR layout.

conv3x3(16) -> 3 groups of ``n = (depth - 4) / 6`` pre-activation BasicBlocks with
16k/32k/64k channels (k = width; strides 1, 2, 2; dropout between the two convs) ->
BN-ReLU -> global average pooling -> linear. Shortcuts are 1x1 convs where the shape
changes. Matches RepDistiller's ``wrn.py`` (e.g. wrn_40_2: 2.2M parameters).
"""

from __future__ import annotations

import re

import torch.nn.functional as F
from torch import Tensor, nn

from kd_ls.models.base import ClassifierNet, image_shape, init_conv_bn

_NAME = re.compile(r"wrn_(\d+)_(\d+)")


def parse_wrn_name(name: str) -> tuple[int, int] | None:
    """``'wrn_40_2' -> (40, 2)``; ``None`` if ``name`` is not of the form ``wrn_<depth>_<width>``."""
    match = _NAME.fullmatch(name)
    return None if match is None else (int(match.group(1)), int(match.group(2)))


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 + shortcut (1x1 conv on the pre-activation if shapes differ)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.dropout = dropout
        self.shortcut = (
            None
            if stride == 1 and in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(pre)))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(ClassifierNet):
    def __init__(self, depth: int, width: int, num_classes: int, in_channels: int, dropout: float) -> None:
        super().__init__()
        blocks_per_group = (depth - 4) // 6
        widths = (16 * width, 32 * width, 64 * width)
        self.stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        groups: list[nn.Module] = []
        channels = 16
        for i, group_width in enumerate(widths):
            blocks = []
            for j in range(blocks_per_group):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(PreActBlock(channels, group_width, stride, dropout))
                channels = group_width
            groups.append(nn.Sequential(*blocks))
        self.groups = nn.Sequential(*groups)
        self.bn = nn.BatchNorm2d(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self._set_classifier(nn.Linear(channels, num_classes))
        init_conv_bn(self)
        nn.init.zeros_(self.fc.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn(self.groups(self.stem(x))))
        return self.pool(out).flatten(1)


def wide_resnet(
    depth: int,
    width: int,
    num_classes: int,
    input_shape: tuple[int, ...],
    dropout: float = 0.0,
) -> WideResNet:
    """WRN-``depth``-``width``; ``depth`` must be 6n+4 (n >= 1), ``width`` >= 1."""
    if (depth - 4) % 6 != 0 or depth < 10:
        raise ValueError(
            f"wrn depth {depth} (model name 'wrn_{depth}_{width}') is invalid; "
            f"depth must be 6n+4 with n >= 1 (e.g. 10, 16, 22, 28, 40)"
        )
    if width < 1:
        raise ValueError(f"wrn width {width} (model name 'wrn_{depth}_{width}') is invalid; width must be >= 1")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    channels = image_shape(input_shape, f"wrn_{depth}_{width}")[0]
    return WideResNet(depth, width, num_classes, channels, dropout)
