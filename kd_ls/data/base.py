"""The one data path every dataset shares: whole splits held as tensors on the device.

A dataset subclass only says how to load its arrays (`load_arrays`). This module carves the
validation split from the training data, keeps every split as one tensor (uint8 for images)
on the training device, shuffles with its own seeded generator, and augments and
normalises each batch on the device. No DataLoader workers: for data that fits in memory,
slicing a resident tensor is faster than any loader on CPU and GPU alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Optional

import pytorch_lightning as pl
import torch
from torch import Tensor

from kd_ls.data.augment import (
    crop_flip_views,
    num_shift_views,
    num_views,
    random_crop_flip,
    random_shift,
    shift_views,
    views_from_id,
)

Batch = tuple[Tensor, Tensor, Tensor, Tensor]  # inputs, labels, sample indices, view ids


@dataclass
class ArraySplits:
    """Raw arrays of a dataset: train and test inputs (N, C, ...) and int64 labels."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    class_names: list[str]


class TensorBatches:
    """Iterable of (x, y, index, view) batches sliced from tensors.

    Shuffling draws from its own generator, so data order depends on the seed alone. Under
    several processes each rank takes every world_size-th sample of the same permutation.
    With `steps_per_call` > 1 each item is a list of that many consecutive batches (the last
    item fewer), for a module that takes one optimizer step per batch of it.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        steps_per_call: int = 1,
    ) -> None:
        self.x, self.y, self.batch_size, self.shuffle, self.drop_last = x, y, batch_size, shuffle, drop_last
        self.rank, self.world_size, self.steps_per_call = rank, world_size, steps_per_call
        self.generator = torch.Generator().manual_seed(seed)

    def _usable(self) -> int:
        # Training shards must be equally long (else DDP ranks wait on each other forever);
        # eval shards keep every sample, since eval steps hold no collective operation.
        n = self.y.shape[0]
        return n - n % self.world_size if self.shuffle else n

    def _indices(self) -> Tensor:
        n = self.y.shape[0]
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        return order[: self._usable()][self.rank :: self.world_size]

    @property
    def num_batches(self) -> int:
        """Batches of `batch_size` per pass (optimizer steps per epoch when training)."""
        n = len(range(self.rank, self._usable(), self.world_size))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __len__(self) -> int:
        return -(-self.num_batches // self.steps_per_call)

    def __iter__(self) -> Iterator[Batch | list[Batch]]:
        order = self._indices().to(self.y.device)[: self.num_batches * self.batch_size]
        zeros = torch.zeros_like(order)
        step = self.batch_size * self.steps_per_call
        for start in range(0, order.shape[0], step):
            idx = order[start : start + step]
            x, y = self.x[idx], self.y[idx]  # one gather per group, then views per batch
            if self.steps_per_call == 1:
                yield x, y, idx, zeros[: idx.shape[0]]
            else:
                yield list(zip(*(t.split(self.batch_size) for t in (x, y, idx, zeros[: idx.shape[0]]))))


def global_seed() -> int:
    """The seed given to Lightning's seed_everything (it exports PL_GLOBAL_SEED), else 0."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


class ArrayDataModule(pl.LightningDataModule):
    """Base LightningDataModule for datasets that fit in memory.

    Args:
        batch_size: training batch size.
        eval_batch_size: batch size for val/test/predict.
        val_fraction: share of the training data held out as the val split (used for
            temperature scaling and selection; the test split is never used for either).
        split_seed: seed of the train/val split, fixed apart from the run seed so every run
            of a study sees the same val split.
        augment: augment training batches: padded random crop + flip for images, a random
            circular shift of up to 4 positions for 1-D signals.
        data_on_device: keep whole splits on the training device (default). False keeps
            them on the CPU and lets Lightning copy each batch.
        drop_last: drop the last incomplete training batch.
        steps_per_call: training batches handed over per Lightning call (a list of batches
            when > 1). The CLI links it from `model.steps_per_call`, which owns it.
    """

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        augment: bool = False,
        data_on_device: bool = True,
        drop_last: bool = False,
        steps_per_call: int = 1,
    ) -> None:
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {val_fraction!r}")
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError(f"data.batch_size and data.eval_batch_size must be >= 1, got {batch_size}, {eval_batch_size}")
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.split_seed, self.augment = val_fraction, split_seed, augment
        if steps_per_call < 1:
            raise ValueError(f"model.steps_per_call must be >= 1, got {steps_per_call} (data.steps_per_call is linked from it)")
        self.data_on_device, self.drop_last, self.steps_per_call = data_on_device, drop_last, steps_per_call
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}
        self.augment_pad = 4

    # ---- what a dataset subclass provides -------------------------------------------------
    def load_arrays(self) -> ArraySplits:
        """Load the dataset's raw arrays. Subclasses implement this."""
        raise NotImplementedError

    # ---- shape facts, available before setup (the CLI links them into the model) ----------
    @cached_property
    def arrays(self) -> ArraySplits:
        """The raw arrays, loaded once per instance."""
        return self.load_arrays()

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.arrays.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. (1, 40) or (3, 32, 32)."""
        return tuple(self.arrays.train_x.shape[1:])

    @property
    def class_names(self) -> list[str]:
        """Class names in label order."""
        return self.arrays.class_names

    @property
    def num_views(self) -> int:
        """How many distinct training views augmentation can produce (1 without augmentation)."""
        if not self.augment:
            return 1
        return num_views(self.augment_pad, flip=True) if self._images else num_shift_views(self.augment_pad)

    @property
    def _images(self) -> bool:
        return self.arrays.train_x.ndim == 4

    # ---- Lightning hooks --------------------------------------------------------------------
    def setup(self, stage: Optional[str] = None) -> None:
        """Split train/val, compute normalisation on the train split, move splits to the device."""
        if self.splits:
            return
        a = self.arrays
        if self.augment and a.train_x.ndim not in (3, 4):
            raise ValueError(f"data.augment: needs images (N, C, H, W) or signals (N, C, L); this dataset's inputs "
                             f"are {tuple(a.train_x.shape[1:])}; set data.augment=false")
        n_val = max(1, int(round(self.val_fraction * a.train_y.shape[0])))
        order = torch.randperm(a.train_y.shape[0], generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
        device = self._device()
        self.splits = {
            "train": (a.train_x[train_idx].to(device), a.train_y[train_idx].to(device)),
            "val": (a.train_x[val_idx].to(device), a.train_y[val_idx].to(device)),
            "test": (a.test_x.to(device), a.test_y.to(device)),
        }
        train_x = self.splits["train"][0].float()
        channel_dims = [0] + list(range(2, train_x.ndim))
        self.mean = train_x.mean(dim=channel_dims).view(1, -1, *([1] * (train_x.ndim - 2)))
        self.std = train_x.std(dim=channel_dims).clamp_min(1e-8).view_as(self.mean)
        self.augment_generator = torch.Generator(device=device).manual_seed(global_seed() + 1)

    def _device(self) -> torch.device:
        if self.data_on_device and self.trainer is not None:
            return self.trainer.strategy.root_device
        return torch.device("cpu")

    def _rank_info(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def loader(self, split: str, shuffle: bool = False) -> TensorBatches:
        """Batches of one split ('train', 'val' or 'test') in the data module's batch format."""
        self.setup()
        x, y = self.splits[split]
        rank, world = self._rank_info()
        if split == "train":
            return TensorBatches(x, y, self.batch_size, shuffle, global_seed(), self.drop_last, rank, world,
                                 self.steps_per_call)
        return TensorBatches(x, y, self.eval_batch_size, False, rank=rank, world_size=world)

    def train_dataloader(self) -> TensorBatches:
        """Shuffled training batches."""
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> TensorBatches:
        """Val batches in fixed order."""
        return self.loader("val")

    def test_dataloader(self) -> TensorBatches:
        """Test batches in fixed order."""
        return self.loader("test")

    def on_after_batch_transfer(self, batch: Batch | list[Batch], dataloader_idx: int) -> Batch | list[Batch]:
        """Lightning's hook: prepare each batch of a call on the device."""
        training = self.trainer is not None and self.trainer.training
        if isinstance(batch, list):
            return [self.prepare_batch(b, training) for b in batch]
        return self.prepare_batch(batch, training)

    def prepare_batch(self, batch: Batch, training: bool = False) -> Batch:
        """Augment (training batches only) and normalise one batch already on the device."""
        x, y, idx, view = batch
        if self.augment and training:
            augment = random_crop_flip if self._images else random_shift
            x, view = augment(x, self.augment_pad, generator=self.augment_generator)
        return self.normalize(x), y, idx, view

    def view_inputs(self, x: Tensor, view: int) -> Tensor:
        """Raw training inputs as the model sees them under one augmentation view (normalised)."""
        if self.augment:
            ids = torch.full((x.shape[0],), view, device=x.device)
            if self._images:
                x = crop_flip_views(x, *views_from_id(ids, self.augment_pad), self.augment_pad)
            else:
                x = shift_views(x, ids, self.augment_pad)
        return self.normalize(x)

    def normalize(self, x: Tensor) -> Tensor:
        """Float inputs standardised with the train split's per-channel mean and std."""
        return (x.float() - self.mean.to(x.device)) / self.std.to(x.device)
