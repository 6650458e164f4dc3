"""Data modules on the real data that is here: MNIST-1D, digits, a JPEG copy of CIFAR-10 ($KD_LS_CIFAR10_JPEG)."""

import os
from pathlib import Path

import pytest
import torch

from kd_ls.data import create_datamodule
from kd_ls.data.augment import crop_flip_views, num_views, random_crop_flip, views_from_id

# A JPEG copy of CIFAR-10 (train/<class>/, test/<class>/ as a .tar.gz or a folder); .ci/run sets it.
CIFAR_JPEG = Path(os.environ.get("KD_LS_CIFAR10_JPEG", "/nonexistent"))


def test_mnist1d_splits_are_disjoint_and_shaped():
    dm = create_datamodule("mnist1d", num_samples=1000, val_fraction=0.2)
    dm.setup()
    tr_x, va_x, te_x = (dm.splits[s][0] for s in ("train", "val", "test"))
    assert (tr_x.shape[0], va_x.shape[0], te_x.shape[0]) == (640, 160, 200)
    assert dm.input_shape == (1, 40) and dm.num_classes == 10
    # val rows come from the training data and are not in the train split
    full = dm.arrays.train_x
    assert tr_x.shape[0] + va_x.shape[0] == full.shape[0]
    assert not any(torch.equal(va_x[0], row) for row in tr_x)


def test_train_order_depends_on_seed_only(monkeypatch):
    dm = create_datamodule("digits", batch_size=64)
    monkeypatch.setenv("PL_GLOBAL_SEED", "3")
    first = [b[2] for b in dm.train_dataloader()]
    again = [b[2] for b in create_datamodule("digits", batch_size=64).train_dataloader()]
    monkeypatch.setenv("PL_GLOBAL_SEED", "4")
    other = [b[2] for b in create_datamodule("digits", batch_size=64).train_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    assert sorted(torch.cat(first).tolist()) == list(range(dm.splits["train"][1].shape[0]))


def test_crop_flip_view_ids_reproduce_the_view():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    out, views = random_crop_flip(x, pad=4, generator=g)
    assert out.shape == x.shape and views.max() < num_views(4, True)
    dy, dx, flipped = views_from_id(views, pad=4)
    assert torch.equal(crop_flip_views(x, dy, dx, flipped, 4), out)
    # the centre view without flip is the identity; a flip reverses columns
    zero = torch.full((16,), 4)
    assert torch.equal(crop_flip_views(x, zero, zero, torch.zeros(16, dtype=torch.bool), 4), x)
    assert torch.equal(crop_flip_views(x, zero, zero, torch.ones(16, dtype=torch.bool), 4), x.flip(-1))
    # offset (0, 0) shifts the image down-right by 4 with zero padding
    shifted = crop_flip_views(x, zero * 0, zero * 0, torch.zeros(16, dtype=torch.bool), 4)
    assert torch.equal(shifted[:, :, 4:, 4:], x[:, :, :28, :28]) and shifted[:, :, :4].eq(0).all()


@pytest.mark.skipif(not CIFAR_JPEG.exists(), reason="no JPEG CIFAR-10: set KD_LS_CIFAR10_JPEG to its .tar.gz")
def test_image_folder_reads_the_cifar10_jpeg_archive(tmp_path):
    dm = create_datamodule("image_folder", path=str(CIFAR_JPEG), max_per_class=20, cache_dir=str(tmp_path))
    assert dm.class_names[:3] == ["airplane", "automobile", "bird"] and dm.num_classes == 10
    assert dm.arrays.train_x.shape == (200, 3, 32, 32) and dm.arrays.train_x.dtype == torch.uint8
    assert dm.arrays.test_x.shape == (200, 3, 32, 32)
    assert len(list(tmp_path.glob("*.npz"))) == 1  # decoded once into the cache
    again = create_datamodule("image_folder", path=str(CIFAR_JPEG), max_per_class=20, cache_dir=str(tmp_path))
    assert torch.equal(again.arrays.train_x, dm.arrays.train_x)


def test_missing_paths_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.path: .* does not exist"):
        create_datamodule("image_folder", path=str(tmp_path / "nope"))
    dm = create_datamodule("cifar10", root=str(tmp_path / "cifar"))
    with pytest.raises(FileNotFoundError, match=r"data.root: no CIFAR10 files under .*set data.download=true"):
        dm.num_classes
    with pytest.raises(ValueError, match="dataset name 'imagenet' is unknown; choose one of: mnist1d, digits"):
        create_datamodule("imagenet")
