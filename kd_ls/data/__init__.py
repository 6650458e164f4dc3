"""Data modules by name, and from a config file. Every one holds its splits as device-resident tensors."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

from kd_ls.data.base import ArrayDataModule, ArraySplits, TensorBatches
from kd_ls.data.synthetic import MNIST1D, Digits
from kd_ls.data.vision import CIFAR10, CIFAR100, MNIST, FashionMNIST, ImageFolder
from kd_ls.names import did_you_mean

DATASETS: dict[str, type[ArrayDataModule]] = {
    "mnist1d": MNIST1D,
    "digits": Digits,
    "cifar10": CIFAR10,
    "cifar100": CIFAR100,
    "mnist": MNIST,
    "fashion_mnist": FashionMNIST,
    "image_folder": ImageFolder,
}


def create_datamodule(name: str, **kwargs) -> ArrayDataModule:
    """Build a data module by registry name, e.g. create_datamodule('mnist1d', num_samples=4000)."""
    if name not in DATASETS:
        raise ValueError(f"dataset name {name!r} is unknown; choose one of: {', '.join(DATASETS)}"
                         + did_you_mean(name, DATASETS))
    return DATASETS[name](**kwargs)


def datamodule_from_config(path: str | Path, field: str = "--data") -> ArrayDataModule:
    """The kd-ls data module described by a YAML file, not yet set up.

    The file holds a `data:` section with `class_path` and `init_args` (a run folder's config.yaml
    has one), or those two keys at top level. `class_path` is a dotted class path such as
    `kd_ls.data.MNIST1D`, or a registry name of `kd_ls.data.DATASETS` such as `mnist1d`.
    Raises ValueError (prefixed by `field`) when the file does not describe a kd-ls data module.
    """
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{field}: '{path}' is not valid YAML ({err})") from None
    section = config.get("data", config) if isinstance(config, dict) else None
    if not isinstance(section, dict) or "class_path" not in section:
        raise ValueError(f"{field}: '{path}' has no data class_path (expected data: {{class_path, init_args}})")
    class_path, init_args = str(section["class_path"]), section.get("init_args") or {}
    if class_path in DATASETS:
        cls: Any = DATASETS[class_path]
    else:
        module_name, _, class_name = class_path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError, ValueError):
            raise ValueError(f"{field}: cannot import data class '{class_path}' named in '{path}'") from None
    if not (isinstance(cls, type) and issubclass(cls, ArrayDataModule)):
        raise ValueError(f"{field}: '{class_path}' is not a kd-ls data module (kd_ls.data.ArrayDataModule)")
    try:
        return cls(**init_args)
    except TypeError as err:  # an unknown or missing init argument: a config error, not a bug
        raise ValueError(f"{field}: {class_path}: {err}") from None


__all__ = [
    "ArrayDataModule", "ArraySplits", "TensorBatches", "DATASETS", "create_datamodule", "datamodule_from_config",
    "MNIST1D", "Digits", "CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "ImageFolder",
]
