"""AlexNet-style CIFAR-10 net: Müller et al. 2019's CIFAR-10 student.

Layers follow the classic TensorFlow CIFAR-10 tutorial model (derived from
cuda-convnet's layers-18pct), for a 32x32 input::

    conv5x5(64, pad 2) ReLU -> maxpool3 s2 (pad 1)      32 -> 16
    LRN
    conv5x5(64, pad 2) ReLU -> LRN -> maxpool3 s2 (pad 1) 16 -> 8
    flatten (4096) -> fc 384 ReLU -> fc 192 ReLU   (penultimate features, d=192)
    fc K

LRN is TF's ``lrn(depth_radius=4, bias=1, alpha=0.001/9, beta=0.75)``, i.e.
``nn.LocalResponseNorm(size=9, alpha=0.001, beta=0.75, k=1)`` (``lrn=False`` drops it).
About 1.76M parameters for K=10. Convs use He init (kaiming-normal, fan_out), biases zero.
"""

from __future__ import annotations

from torch import Tensor, nn

from kd_ls.models import register_model
from kd_ls.models.base import ClassifierNet, image_shape, init_conv_bn


def _pooled(size: int) -> int:
    """Spatial size after MaxPool2d(3, stride=2, padding=1)."""
    return (size - 1) // 2 + 1


class AlexNetCifar(ClassifierNet):
    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, lrn: bool) -> None:
        super().__init__()
        channels, height, width = input_shape

        def norm() -> nn.Module:
            return nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0) if lrn else nn.Identity()

        self.features = nn.Sequential(
            nn.Conv2d(channels, 64, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
            norm(),
            nn.Conv2d(64, 64, 5, padding=2),
            nn.ReLU(inplace=True),
            norm(),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.Flatten(),
        )
        flat = 64 * _pooled(_pooled(height)) * _pooled(_pooled(width))
        self.head = nn.Sequential(
            nn.Linear(flat, 384),
            nn.ReLU(inplace=True),
            nn.Linear(384, 192),
            nn.ReLU(inplace=True),
        )
        self._set_classifier(nn.Linear(192, num_classes))
        init_conv_bn(self)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@register_model("alexnet_cifar")
def alexnet_cifar(num_classes: int, input_shape: tuple[int, ...], lrn: bool = True) -> AlexNetCifar:
    """AlexNet-style student for small images (any ``(C, H, W)``; designed for 3x32x32)."""
    return AlexNetCifar(image_shape(input_shape, "alexnet_cifar"), num_classes, lrn)
