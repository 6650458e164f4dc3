"""Small 1-D CNN for MNIST-1D (Greydanus 2020), in the spirit of the paper's CNN.

Layers for the defaults (``channels=32, depth=3, hidden=128``, input ``(1, 40)``)::

    conv(1->32, k5, s1) BN ReLU     40 -> 40
    conv(32->32, k5, s2) BN ReLU    40 -> 20
    conv(32->64, k5, s2) BN ReLU    20 -> 10
    flatten (640) -> linear(128) -> ReLU   (penultimate features, d=128)
    linear(K)

About 99k parameters for K=10. Flattening (rather than global pooling) keeps the
position information that MNIST-1D digits carry.
"""

from __future__ import annotations

from torch import Tensor, nn

from kd_ls.models import register_model
from kd_ls.models.base import ClassifierNet, init_conv_bn


class Conv1dNet(ClassifierNet):
    """``depth`` conv-BN-ReLU layers (first stride 1, then stride 2) -> flatten -> MLP head.

    Conv widths are ``channels`` for the first two layers, then doubling:
    ``C, C, 2C, 4C, ...``. Convs use "same" padding ``kernel_size // 2``.
    """

    def __init__(
        self,
        in_channels: int,
        length: int,
        num_classes: int,
        channels: int,
        depth: int,
        kernel_size: int,
        hidden: int,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.length = length
        pad = kernel_size // 2
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(depth):
            c_out = channels if i == 0 else channels * 2 ** (i - 1)
            stride = 1 if i == 0 else 2
            layers += [
                nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=pad, bias=False),
                nn.BatchNorm1d(c_out),
                nn.ReLU(inplace=True),
            ]
            length = (length + 2 * pad - kernel_size) // stride + 1
            if length < 1:
                raise ValueError(f"input length {self.length} is too short for depth={depth}")
            c_in = c_out
        layers.append(nn.Flatten())
        width = c_in * length
        if hidden > 0:
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self._set_classifier(nn.Linear(width, num_classes))
        init_conv_bn(self)

    def forward_features(self, x: Tensor) -> Tensor:
        # Accept (N, L) as well as (N, C, L) batches.
        return self.body(x.reshape(x.shape[0], self.in_channels, self.length))


@register_model("conv1d")
def conv1d(
    num_classes: int,
    input_shape: tuple[int, ...],
    channels: int = 32,
    depth: int = 3,
    kernel_size: int = 5,
    hidden: int = 128,
) -> Conv1dNet:
    """1-D CNN for inputs of shape ``(C, L)`` (or ``(L,)``, read as one channel).

    ``hidden=0`` drops the hidden linear layer (features are then the flattened conv output).
    """
    if len(input_shape) == 1:
        input_shape = (1, *input_shape)
    if len(input_shape) != 2 or min(input_shape) < 1:
        raise ValueError(f"input_shape {input_shape} is invalid for model 'conv1d'; expected (C, L)")
    if channels < 1 or depth < 1 or kernel_size < 1 or hidden < 0:
        raise ValueError(
            f"conv1d needs channels >= 1, depth >= 1, kernel_size >= 1, hidden >= 0; "
            f"got channels={channels}, depth={depth}, kernel_size={kernel_size}, hidden={hidden}"
        )
    return Conv1dNet(input_shape[0], input_shape[1], num_classes, channels, depth, kernel_size, hidden)
