"""Fast CIFAR net in the spirit of airbench (Keller Jordan, KellerJordan/cifar10-airbench).

A short, wide VGG-like net that trains to good CIFAR-10 accuracy in a few epochs, and runs
well on GPUs (few, large 3x3 convolutions; BatchNorm; no skip connections to break
channels_last kernels). For a 3x32x32 input and the default ``widths=(64, 256, 256)``::

    stem   conv3x3(C -> stem_width) BN GELU                         32x32
    block  conv3x3(-> 64)  maxpool2 BN GELU  conv3x3(64)  BN GELU  32 -> 16
    block  conv3x3(-> 256) maxpool2 BN GELU  conv3x3(256) BN GELU  16 -> 8
    block  conv3x3(-> 256) maxpool2 BN GELU  conv3x3(256) BN GELU   8 -> 4
    global max pool -> flatten -> x scale     (penultimate features, d = widths[-1])
    fc K

Each block is airbench's ConvGroup (conv, pool, BN, GELU, conv, BN, GELU). Differences from
airbench: the stem is a learned conv + BN (airbench initialises a 2x2 conv from whitened
data patches, which a registry model built without data cannot do), the BN affine weights
are trained, and global max pooling replaces the fixed MaxPool2d(3) so any input size
works. ``scale`` multiplies the pooled features, hence the logits, as airbench's final
``Mul(1/9)`` (it must sit before the classifier so that ``forward == fc(forward_features)``).
About 1.97M parameters for K=10 (``fastnet``); ``fastnet_small`` (widths (32, 64, 128),
about 0.29M) is the matching student preset.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from kd_ls.models import register_model
from kd_ls.models.base import ClassifierNet, image_shape, init_conv_bn

TEACHER_WIDTHS = (64, 256, 256)
STUDENT_WIDTHS = (32, 64, 128)


class ConvGroup(nn.Module):
    """conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU (airbench's block)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.bn1(self.pool(self.conv1(x))))
        return self.act(self.bn2(self.conv2(x)))


class FastNet(ClassifierNet):
    """Stem + one ConvGroup per entry of ``widths`` + global max pool + scale + linear."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        widths: Sequence[int],
        stem_width: int,
        scale: float,
    ) -> None:
        super().__init__()
        channels, height, width = input_shape
        if not widths or min(widths) < 1 or stem_width < 1:
            raise ValueError(
                f"fastnet needs non-empty positive widths and stem_width >= 1; got widths={tuple(widths)}, "
                f"stem_width={stem_width}"
            )
        if scale <= 0:
            raise ValueError(f"fastnet scale must be > 0, got {scale!r}")
        if min(height, width) < 2 ** len(widths):
            raise ValueError(
                f"input_shape {input_shape} is too small for fastnet with {len(widths)} blocks "
                f"(each halves the resolution; need H, W >= {2 ** len(widths)})"
            )
        self.scale = float(scale)
        layers: list[nn.Module] = [
            nn.Conv2d(channels, stem_width, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.GELU(),
        ]
        c_in = stem_width
        for w in widths:
            layers.append(ConvGroup(c_in, int(w)))
            c_in = int(w)
        layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self._set_classifier(nn.Linear(c_in, num_classes))
        init_conv_bn(self)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x) * self.scale


def _build(name: str, num_classes: int, input_shape: tuple[int, ...], widths: Sequence[int],
           stem_width: int, scale: float) -> FastNet:
    return FastNet(image_shape(input_shape, name), num_classes, tuple(widths), stem_width, scale)


@register_model("fastnet")
def fastnet(
    num_classes: int,
    input_shape: tuple[int, ...],
    widths: Sequence[int] = TEACHER_WIDTHS,
    stem_width: int = 24,
    scale: float = 1 / 9,
) -> FastNet:
    """airbench-style fast teacher (default widths (64, 256, 256), ~1.97M parameters)."""
    return _build("fastnet", num_classes, input_shape, widths, stem_width, scale)


@register_model("fastnet_small")
def fastnet_small(
    num_classes: int,
    input_shape: tuple[int, ...],
    widths: Sequence[int] = STUDENT_WIDTHS,
    stem_width: int = 16,
    scale: float = 1 / 9,
) -> FastNet:
    """The student preset of ``fastnet``: widths (32, 64, 128), stem 16 (~0.29M parameters)."""
    return _build("fastnet_small", num_classes, input_shape, widths, stem_width, scale)
