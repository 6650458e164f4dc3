"""CIFAR ResNets.

* ``resnet20/32/44/56/110`` -- He et al. 2016 (Sec. 4.2): 3x3 stem with 16 channels,
  3 stages of ``n = (depth - 2) / 6`` BasicBlocks with 16/32/64 channels, global
  average pooling, linear. Shortcuts are **option A** (parameter-free: identity, or
  stride-2 subsampling plus zero-padding of the new channels), as in the paper, which
  gives the published sizes (resnet20 0.27M, resnet56 0.85M, resnet110 1.7M parameters).
* ``resnet8x4``, ``resnet32x4`` -- the RepDistiller / CRD (Tian et al. 2020) variants:
  32-channel stem, stages of 64/128/256 channels, **option B** shortcuts (1x1 conv + BN
  whenever the shape changes, as in RepDistiller), ~1.2M and ~7.4M parameters.

Both accept any ``(C, H, W)`` input thanks to adaptive average pooling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from kd_ls.models import register_model
from kd_ls.models.base import ClassifierNet, image_shape, init_conv_bn


class ShortcutA(nn.Module):
    """Option-A shortcut: subsample by ``stride`` and zero-pad channels up to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = ShortcutA(in_channels, out_channels, stride)
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(ClassifierNet):
    """Stem conv3x3(stem_width)-BN-ReLU, 3+ stages of BasicBlocks (first stride 1, then 2), GAP, linear."""

    def __init__(
        self,
        depth: int,
        stem_width: int,
        stage_widths: Sequence[int],
        shortcut: str,
        num_classes: int,
        in_channels: int,
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth {depth} is invalid; depth must be 6n+2 with n >= 1")
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut '{shortcut}' is invalid; choose one of: A, B")
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_width, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        width = stem_width
        for i, stage_width in enumerate(stage_widths):
            blocks = []
            for j in range(blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(BasicBlock(width, stage_width, stride, shortcut))
                width = stage_width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self._set_classifier(nn.Linear(width, num_classes))
        init_conv_bn(self)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.pool(self.stages(self.stem(x))).flatten(1)


def _he_resnet(depth: int):
    def builder(num_classes: int, input_shape: tuple[int, ...], shortcut: str = "A") -> CifarResNet:
        channels = image_shape(input_shape, f"resnet{depth}")[0]
        return CifarResNet(depth, 16, (16, 32, 64), shortcut, num_classes, channels)

    builder.__name__ = f"resnet{depth}"
    builder.__doc__ = f"He et al. CIFAR ResNet-{depth} (16/32/64 channels, option-A shortcuts by default)."
    return builder


def _x4_resnet(depth: int):
    def builder(num_classes: int, input_shape: tuple[int, ...], shortcut: str = "B") -> CifarResNet:
        channels = image_shape(input_shape, f"resnet{depth}x4")[0]
        return CifarResNet(depth, 32, (64, 128, 256), shortcut, num_classes, channels)

    builder.__name__ = f"resnet{depth}x4"
    builder.__doc__ = f"RepDistiller ResNet-{depth}x4 (32/64/128/256 channels, option-B shortcuts by default)."
    return builder


for _depth in (20, 32, 44, 56, 110):
    register_model(f"resnet{_depth}")(_he_resnet(_depth))
for _depth in (8, 32):
    register_model(f"resnet{_depth}x4")(_x4_resnet(_depth))
