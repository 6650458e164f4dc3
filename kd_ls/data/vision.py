"""Image datasets: torchvision's (CIFAR-10/100, MNIST, Fashion-MNIST) and any image-folder tree.

Images are held as uint8 (N, C, H, W); conversion to float, augmentation and normalisation
happen per batch on the device (see base.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zlib
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch

from kd_ls.data.base import ArrayDataModule, ArraySplits

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".webp")
CACHE_VARIABLE = "KD_LS_CACHE"


def default_cache_dir() -> Path:
    """Where decoded datasets are cached: $KD_LS_CACHE, else ~/.cache/kd-ls."""
    return Path(os.environ.get(CACHE_VARIABLE, Path.home() / ".cache" / "kd-ls"))


def check_cache_dir(folder: Path, field: str) -> None:
    """Create the cache folder and check it takes files; refuse it with a one-line error naming
    where it came from (`field`: data.cache_dir, or the KD_LS_CACHE variable)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        reason = "it, or a folder above it, is a file" if isinstance(err, (FileExistsError, NotADirectoryError)) \
            else err.strerror
        raise ValueError(f"{field}: cannot keep the dataset cache in '{folder}' ({reason}); point {field} at a "
                         "writable folder") from None


class TorchvisionImages(ArrayDataModule):
    """A torchvision dataset loaded whole into uint8 tensors.

    Args:
        root: folder holding (or receiving) torchvision's files.
        download: fetch the files when absent (needs a network).
        augment: padded random crop + flip (default on for 32x32 colour sets).
        **kwargs: ArrayDataModule arguments.
    """

    dataset_name = ""  # torchvision class name, set by subclasses

    def __init__(self, root: str = "data", download: bool = False, augment: Optional[bool] = None, **kwargs) -> None:
        super().__init__(augment=self.default_augment if augment is None else augment, **kwargs)
        self.root, self.download = root, download

    default_augment = False

    def load_arrays(self) -> ArraySplits:
        """Read train and test splits through torchvision."""
        import torchvision.datasets as tvd

        cls = getattr(tvd, self.dataset_name)
        try:
            train = cls(self.root, train=True, download=self.download)
            test = cls(self.root, train=False, download=self.download)
        except OSError as err:  # urllib's URLError, a refused connection, a full disk
            if not self.download:
                raise
            raise FileNotFoundError(
                f"data.download: could not fetch {self.dataset_name} into '{os.path.abspath(self.root)}' "
                f"({getattr(err, 'reason', err)}); on a machine without a network, copy the files there "
                "and set data.download=false"
            ) from None
        except RuntimeError as err:
            if self.download:
                raise
            raise FileNotFoundError(
                f"data.root: no {self.dataset_name} files under '{os.path.abspath(self.root)}'; "
                f"set data.download=true to fetch them ({err})"
            ) from None
        return ArraySplits(*self._tensors(train), *self._tensors(test), list(train.classes))

    @staticmethod
    def _tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(np.asarray(ds.data))
        x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)  # grey (N,H,W) or colour (N,H,W,C)
        return x.contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)


class CIFAR10(TorchvisionImages):
    """CIFAR-10 through torchvision (50k/10k 32x32 colour images, 10 classes)."""

    dataset_name, default_augment = "CIFAR10", True


class CIFAR100(TorchvisionImages):
    """CIFAR-100 through torchvision (50k/10k 32x32 colour images, 100 classes)."""

    dataset_name, default_augment = "CIFAR100", True


class MNIST(TorchvisionImages):
    """MNIST through torchvision (60k/10k 28x28 grey images)."""

    dataset_name = "MNIST"


class FashionMNIST(TorchvisionImages):
    """Fashion-MNIST through torchvision (60k/10k 28x28 grey images)."""

    dataset_name = "FashionMNIST"


def _decode(data: bytes, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"data.path: '{where}' is not a readable image ({err})") from None


def _read_members(source: Path) -> Iterable[tuple[str, Optional[bytes]]]:
    """(relative path, bytes) of every image file in a folder tree or a tar archive, and
    (relative path, None) of every folder (so that empty class folders show)."""
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_dir():
                yield path.relative_to(source).as_posix(), None
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                yield path.relative_to(source).as_posix(), path.read_bytes()
        return
    try:
        with tarfile.open(source) as tar:
            for member in tar:
                if member.isdir():
                    yield member.name.rstrip("/"), None
                elif member.isfile() and Path(member.name).suffix.lower() in IMAGE_SUFFIXES:
                    yield member.name, tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:  # gzip's errors are OSError and EOFError
        reason = str(err).splitlines()[0].rstrip(":")  # tarfile lists every method it tried, one per line
        raise ValueError(f"data.path: '{source}' is not a readable folder or .tar / .tar.gz archive ({reason})") from None


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]} pixels"


def _class_folder(relpath: str) -> set[tuple[str, str]]:
    """{(split, class)} for a folder path ending in train/<class> or test/<class>, else {}."""
    parts = relpath.split("/")
    return {(parts[-2], parts[-1])} if len(parts) >= 2 and parts[-2] in ("train", "test") else set()


def _check_classes(source: Path, folders: set[tuple[str, str]], labels: dict[str, list[str]]) -> None:
    """Refuse class folders without images, and classes of the test split the training split lacks."""
    for split, name in sorted(folders):
        if name not in labels[split]:
            raise ValueError(f"data.path: class folder '{split}/{name}' of '{source}' holds no images "
                             f"({', '.join(IMAGE_SUFFIXES)}); remove it or add its images")
    unknown = sorted(set(labels["test"]) - set(labels["train"]))
    if unknown:
        raise ValueError(f"data.path: class folder(s) {', '.join('test/' + c for c in unknown)} of '{source}' have no "
                         f"train/ counterpart; classes in train/: {', '.join(sorted(set(labels['train'])))}")


def _split_and_class(relpath: str) -> Optional[tuple[str, str]]:
    """('train'|'test', class) from a path ending in <split>/<class>/<file>, else None."""
    parts = relpath.split("/")
    if len(parts) >= 3 and parts[-3] in ("train", "test"):
        return parts[-3], parts[-2]
    return None


def decode_image_folder(source: Path, max_per_class: Optional[int]) -> dict[str, np.ndarray]:
    """Decode a train/<class>/*, test/<class>/* tree (folder or .tar[.gz]) into uint8 arrays.

    Refused with a one-line ValueError naming the file or folder: an unreadable archive or
    image, an empty class folder, a class in test/ only, images of different sizes."""
    images: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    labels: dict[str, list[str]] = {"train": [], "test": []}
    taken: dict[tuple[str, str], int] = {}
    folders: set[tuple[str, str]] = set()
    first: Optional[tuple[str, tuple[int, ...]]] = None  # the first image and its shape
    for relpath, data in sorted(_read_members(source), key=lambda m: m[0]):
        if data is None:
            folders.update(_class_folder(relpath))
            continue
        found = _split_and_class(relpath)
        if found is None:
            continue
        if max_per_class is not None and taken.get(found, 0) >= max_per_class:
            continue
        taken[found] = taken.get(found, 0) + 1
        image = _decode(data, f"{source}/{relpath}")
        first = first or (relpath, image.shape)
        if image.shape != first[1]:
            raise ValueError(f"data.path: '{source}/{relpath}' is {_size(image.shape)} but '{source}/{first[0]}' is "
                             f"{_size(first[1])}; every image must have the same size")
        images[found[0]].append(image)
        labels[found[0]].append(found[1])
    if not images["train"] or not images["test"]:
        raise ValueError(f"data.path: '{source}' holds no train/<class>/ and test/<class>/ image folders "
                         f"(images: {', '.join(IMAGE_SUFFIXES)})")
    _check_classes(source, folders, labels)
    classes = sorted(set(labels["train"]))
    index = {c: i for i, c in enumerate(classes)}
    out = {"classes": np.array(classes)}
    for split in ("train", "test"):
        out[f"{split}_x"] = np.stack(images[split]).transpose(0, 3, 1, 2)
        out[f"{split}_y"] = np.array([index[c] for c in labels[split]], dtype=np.int64)
    return out


class ImageFolder(ArrayDataModule):
    """Any class-per-folder image tree with train/ and test/ splits, or a .tar.gz of one.

    Decoded once into a cached .npz (keyed by the source's path, size and mtime), then
    loaded in well under a second. Example: a CIFAR-10 JPEG tree packed as cifar10-jpeg.tar.gz.

    Args:
        path: folder or archive holding .../train/<class>/<img> and .../test/<class>/<img>;
            environment variables in it ($VAR, ${VAR}) are expanded.
        max_per_class: keep at most this many images per class and split (small tests).
        cache_dir: where the decoded arrays go (default $KD_LS_CACHE or ~/.cache/kd-ls).
        augment: padded random crop + flip.
        **kwargs: ArrayDataModule arguments.
    """

    def __init__(
        self,
        path: str,
        max_per_class: Optional[int] = None,
        cache_dir: Optional[str] = None,
        augment: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(augment=augment, **kwargs)
        expanded = os.path.expandvars(path)  # a study file can say ${KD_LS_CIFAR10_JPEG}: one file for every machine
        if "$" in expanded:
            raise FileNotFoundError(f"data.path: '{path}' names an environment variable that is not set")
        self.path, self.max_per_class = Path(expanded), max_per_class
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        if not self.path.exists():
            raise FileNotFoundError(f"data.path: '{self.path}' does not exist")
        if not self.cache_file().exists():
            check_cache_dir(self.cache_dir, "data.cache_dir" if cache_dir else CACHE_VARIABLE)

    def cache_file(self) -> Path:
        """The .npz this source decodes to."""
        stat = self.path.stat()
        key = f"{self.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.max_per_class}"
        return self.cache_dir / f"image_folder-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"

    def load_arrays(self) -> ArraySplits:
        """Load the cached arrays, decoding the source first if no cache exists."""
        cache = self.cache_file()
        if not cache.exists():
            arrays = decode_image_folder(self.path, self.max_per_class)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".tmp{os.getpid()}.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, cache)  # atomic: a killed decode never leaves a half cache
        with np.load(cache) as z:
            t = {k: torch.from_numpy(z[k]) for k in ("train_x", "train_y", "test_x", "test_y")}
            classes = [str(c) for c in z["classes"]]
        return ArraySplits(t["train_x"], t["train_y"], t["test_x"], t["test_y"], classes)
