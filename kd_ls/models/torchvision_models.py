"""``tv:<name>`` -- any torchvision classification model behind the kd-ls interface.

The model is built with ``torchvision.models.get_model(name, weights=None,
num_classes=num_classes, **kwargs)`` (never pretrained weights). Its *last*
``nn.Linear`` (``fc`` for ResNets, ``classifier[-1]`` for VGG/MobileNet/EfficientNet,
``heads.head`` for ViT, ``head`` for Swin, ...) becomes the classifier and is replaced
in the body by ``nn.Identity()``, so ``forward_features`` is the body's output.

Caveats:

* Models whose classifier is not a final ``nn.Linear`` (SqueezeNet uses a 1x1 conv)
  are rejected with a ``ValueError``: the last linear must also be the last
  parameterised layer of the model.
* ``googlenet`` / ``inception_v3`` default to ``aux_logits=False`` so that training-mode
  outputs are tensors rather than named tuples.
* For ``C != 3`` input channels, the stem conv (the first ``Conv2d`` taking 3 channels)
  is replaced by a same-shaped conv taking ``C`` channels, He-initialised (fan_out),
  which may differ from the model's own init scheme (e.g. ViT's ``conv_proj``).
* Input size constraints are torchvision's (ViT needs ``image_size`` to match the input,
  e.g. ``create_model("tv:vit_b_16", 10, (3, 32, 32), image_size=32)``).
"""

from __future__ import annotations

import torchvision
from torch import Tensor, nn

from kd_ls.models.base import ClassifierNet, image_shape

_AUX_LOGITS = ("googlenet", "inception_v3")


class TorchvisionClassifier(ClassifierNet):
    """A torchvision model split into ``body`` (final linear replaced by identity) and ``fc``."""

    def __init__(self, body: nn.Module, fc: nn.Linear) -> None:
        super().__init__()
        self.body = body
        self._set_classifier(fc)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.body(x)


def _replace_stem(model: nn.Module, name: str, in_channels: int) -> None:
    """Swap the first 3-channel ``Conv2d`` for an equivalent one taking ``in_channels``."""
    for qualname, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            stem = nn.Conv2d(
                in_channels,
                module.out_channels,
                module.kernel_size,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
                groups=1,
                bias=module.bias is not None,
                padding_mode=module.padding_mode,
            )
            nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")
            if stem.bias is not None:
                nn.init.zeros_(stem.bias)
            model.set_submodule(qualname, stem)
            return
    raise ValueError(f"torchvision model '{name}' has no 3-channel stem conv to adapt to {in_channels} channels")


def torchvision_model(
    name: str, num_classes: int, input_shape: tuple[int, ...], **kwargs
) -> TorchvisionClassifier:
    """Build torchvision classification model ``name`` (randomly initialised) as a ClassifierNet."""
    valid = torchvision.models.list_models(module=torchvision.models)
    if name not in valid:
        raise ValueError(
            f"torchvision model name '{name}' (model 'tv:{name}') is unknown; valid names are given by "
            f"torchvision.models.list_models(module=torchvision.models), e.g. resnet18, mobilenet_v3_small"
        )
    channels = image_shape(input_shape, f"tv:{name}")[0]
    if name in _AUX_LOGITS:
        kwargs.setdefault("aux_logits", False)
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)

    leaves = [
        (qualname, module)
        for qualname, module in model.named_modules()
        if next(module.children(), None) is None and next(module.parameters(recurse=False), None) is not None
    ]
    qualname, fc = leaves[-1]
    if not isinstance(fc, nn.Linear):
        raise ValueError(
            f"torchvision model '{name}' does not end in an nn.Linear classifier "
            f"(its last layer '{qualname}' is {type(fc).__name__}); it cannot be used as 'tv:{name}'"
        )
    model.set_submodule(qualname, nn.Identity())
    if channels != 3:
        _replace_stem(model, name, channels)
    return TorchvisionClassifier(model, fc)
