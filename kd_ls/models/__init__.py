"""Model registry (timm style) and public API.

Concrete names are registered with :func:`register_model`; two name families
are parsed instead of registered:

* ``wrn_<depth>_<width>`` -- Wide ResNet (Zagoruyko & Komodakis 2016), e.g. ``wrn_40_2``;
* ``tv:<torchvision name>`` -- any torchvision classification model, e.g. ``tv:resnet18``.

Every model is a :class:`~kd_ls.models.base.ClassifierNet`: ``forward(x)`` gives
logits, ``forward_features(x)`` the penultimate features, ``get_classifier()``
the final ``nn.Linear``, plus ``num_features`` / ``num_classes`` attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from kd_ls.models.base import ClassifierNet
from kd_ls.names import did_you_mean

Builder = Callable[..., ClassifierNet]

_REGISTRY: dict[str, Builder] = {}

# Name families handled by create_model without a registry entry (shown in errors).
MODEL_PATTERNS: tuple[str, ...] = ("wrn_<depth>_<width>", "tv:<torchvision name>")


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(num_classes, input_shape, **kwargs) -> ClassifierNet``."""

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model name '{name}' is already registered")
        _REGISTRY[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    """Sorted registered model names (the families in ``MODEL_PATTERNS`` are not enumerated)."""
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int, input_shape: Sequence[int], **kwargs) -> nn.Module:
    """Build model ``name`` with ``num_classes`` logits for inputs of shape ``input_shape``.

    ``input_shape`` excludes the batch dimension: ``(C, H, W)`` for image models,
    ``(C, L)`` for ``conv1d``, anything for ``mlp`` (it is flattened).
    Extra ``kwargs`` go to the builder (for ``tv:`` models, to ``torchvision.models.get_model``).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    shape = tuple(int(s) for s in input_shape)
    if name in _REGISTRY:
        return _REGISTRY[name](num_classes, shape, **kwargs)
    wrn = wide_resnet.parse_wrn_name(name)
    if wrn is not None:
        return wide_resnet.wide_resnet(*wrn, num_classes=num_classes, input_shape=shape, **kwargs)
    if name.startswith("tv:"):
        return torchvision_models.torchvision_model(name[3:], num_classes, shape, **kwargs)
    allowed = [*list_models(), *MODEL_PATTERNS]
    raise ValueError(f"model name '{name}' is unknown; choose one of: {', '.join(allowed)}{did_you_mean(name, allowed)}")


# Family modules register their builders on import (they need register_model above).
from kd_ls.models import (  # noqa: E402, F401
    alexnet_cifar,
    conv1d,
    fastnet,
    mlp,
    resnet_cifar,
    torchvision_models,
    wide_resnet,
)

__all__ = ["MODEL_PATTERNS", "ClassifierNet", "create_model", "list_models", "register_model"]
