"""Common interface of every kd-ls classifier (timm style).

A :class:`ClassifierNet` is a feature extractor ("body") followed by one final
``nn.Linear``.  Subclasses implement :meth:`forward_features` and call
:meth:`_set_classifier` once at the end of ``__init__``; :meth:`forward` is then
exactly ``get_classifier()(forward_features(x))``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from torch import Tensor, nn


class ClassifierNet(nn.Module, abc.ABC):
    """Body + final linear classifier.

    Attributes:
        num_features: width ``d`` of the penultimate features (input of ``fc``).
        num_classes: number of logits ``K``.
        fc: the final ``nn.Linear(d, K)``.
    """

    num_features: int
    num_classes: int
    fc: nn.Linear

    def _set_classifier(self, fc: nn.Linear) -> None:
        """Install ``fc`` as the final layer and record its dimensions."""
        self.fc = fc
        self.num_features = fc.in_features
        self.num_classes = fc.out_features

    @abc.abstractmethod
    def forward_features(self, x: Tensor) -> Tensor:
        """Penultimate features of shape ``(N, num_features)``."""

    def get_classifier(self) -> nn.Linear:
        """The final linear layer mapping features to logits."""
        return self.fc

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``(N, num_classes)``."""
        return self.fc(self.forward_features(x))


def image_shape(input_shape: Sequence[int], model: str) -> tuple[int, int, int]:
    """Validate an image ``input_shape`` and return it as ``(C, H, W)``."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"input_shape {shape} is invalid for model '{model}'; expected (C, H, W) with positive sizes"
        )
    return shape  # type: ignore[return-value]


def init_conv_bn(module: nn.Module) -> None:
    """He (kaiming-normal, fan_out, ReLU) init for convs, unit/zero BN affine, zero conv biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
