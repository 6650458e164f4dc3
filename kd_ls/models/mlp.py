"""Fully connected classifier (Hinton et al. 2015 / Müller et al. 2019 MNIST nets).

Müller et al.'s MNIST teacher is ``widths=(1200, 1200)``, the student ``(800, 800)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from kd_ls.models import register_model
from kd_ls.models.base import ClassifierNet


class MLP(ClassifierNet):
    """Flatten -> [Linear -> ReLU -> Dropout] * len(widths) -> Linear(K).

    The penultimate features are the (dropped-out) activations of the last hidden
    layer, or the flattened input when ``widths`` is empty (logistic regression).
    """

    def __init__(self, in_features: int, num_classes: int, widths: Sequence[int], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for hidden in widths:
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        self.body = nn.Sequential(*layers)
        self._set_classifier(nn.Linear(width, num_classes))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.body(x)


@register_model("mlp")
def mlp(
    num_classes: int,
    input_shape: tuple[int, ...],
    widths: Sequence[int] = (1200, 1200),
    dropout: float = 0.0,
) -> MLP:
    """MLP on the flattened input of any ``input_shape``."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if any(int(w) < 1 for w in widths):
        raise ValueError(f"widths must be positive, got {tuple(widths)}")
    return MLP(math.prod(input_shape), num_classes, [int(w) for w in widths], dropout)
