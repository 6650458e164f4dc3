"""Datasets generated or shipped locally: MNIST-1D (mnist1d package) and scikit-learn's digits."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from kd_ls.data.base import ArrayDataModule, ArraySplits

DIGIT_NAMES = [str(d) for d in range(10)]


def check_seed(name: str, seed: int) -> None:
    """Refuse a seed numpy cannot take (the generators below are numpy's)."""
    if not 0 <= seed <= 2**32 - 1:
        raise ValueError(f"{name} must be in [0, {2**32 - 1}], got {seed}")


@lru_cache(maxsize=4)
def _mnist1d_arrays(num_samples: int, seed: int, train_split: float) -> ArraySplits:
    import mnist1d.data

    args = mnist1d.data.get_dataset_args()
    args.num_samples, args.seed, args.train_split = num_samples, seed, train_split
    # make_dataset reseeds numpy's and random's global state; keep the caller's.
    state = np.random.get_state()
    try:
        d = mnist1d.data.make_dataset(args)
    finally:
        np.random.set_state(state)
    as_x = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[:, None, :]  # noqa: E731
    as_y = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))  # noqa: E731
    return ArraySplits(as_x(d["x"]), as_y(d["y"]), as_x(d["x_test"]), as_y(d["y_test"]), DIGIT_NAMES)


class MNIST1D(ArrayDataModule):
    """MNIST-1D (Greydanus 2020) generated locally: 1-D signals of length 40, 10 classes.

    Args:
        num_samples: total samples generated; `train_split` of them form the training data.
        seed: generator seed (the dataset, not the run).
        train_split: share of samples in the training data (the rest is the test split).
        **kwargs: ArrayDataModule arguments.
    """

    def __init__(self, num_samples: int = 10000, seed: int = 42, train_split: float = 0.8, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_samples < 20:
            raise ValueError(f"data.num_samples must be >= 20, got {num_samples}")
        if not 0.0 < train_split < 1.0:
            raise ValueError(f"data.train_split must be in (0, 1), got {train_split!r}")
        check_seed("data.seed", seed)
        self.num_samples, self.seed, self.train_split = num_samples, seed, train_split

    def load_arrays(self) -> ArraySplits:
        """Generate (once per process and settings) the MNIST-1D arrays."""
        return _mnist1d_arrays(self.num_samples, self.seed, self.train_split)


class Digits(ArrayDataModule):
    """scikit-learn's 8x8 handwritten digits (1,797 images) as (1, 8, 8) float inputs.

    Args:
        test_fraction: share held out as the test split (stratified, fixed by `seed`).
        seed: seed of the train/test split.
        **kwargs: ArrayDataModule arguments.
    """

    def __init__(self, test_fraction: float = 0.25, seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"data.test_fraction must be in (0, 1), got {test_fraction!r}")
        check_seed("data.seed", seed)
        self.test_fraction, self.seed = test_fraction, seed

    def load_arrays(self) -> ArraySplits:
        """Load digits and split off a stratified test set."""
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        x = torch.from_numpy(digits.images.astype(np.float32))[:, None]
        y = torch.from_numpy(digits.target.astype(np.int64))
        tr, te = train_test_split(
            np.arange(len(y)), test_size=self.test_fraction, random_state=self.seed, stratify=digits.target
        )
        tr, te = torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(te))
        return ArraySplits(x[tr], y[tr], x[te], y[te], DIGIT_NAMES)
