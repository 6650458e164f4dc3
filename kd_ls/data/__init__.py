"""Data modules by name. Every one holds its splits as device-resident tensors."""

from __future__ import annotations

from kd_ls.data.base import ArrayDataModule, ArraySplits, TensorBatches
from kd_ls.data.synthetic import MNIST1D, Digits
from kd_ls.data.vision import CIFAR10, CIFAR100, MNIST, FashionMNIST, ImageFolder

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
        raise ValueError(f"dataset name {name!r} is unknown; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name](**kwargs)


__all__ = [
    "ArrayDataModule", "ArraySplits", "TensorBatches", "DATASETS", "create_datamodule",
    "MNIST1D", "Digits", "CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "ImageFolder",
]
