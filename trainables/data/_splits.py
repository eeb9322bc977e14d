"""The train/val/test container every loader returns, and the batch transforms that go with it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from raynas._errors import RaynasError

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


class DatasetError(RaynasError, ValueError):
    """A dataset folder or file is missing or malformed; the message names the expected layout."""


@dataclass(frozen=True)
class Splits:
    """Train, validation and test data of one dataset.

    In-memory datasets are ``TensorDataset(x, y)`` with ``x`` of shape (N, C, H, W), either
    ``uint8`` in [0, 255] or float in [0, 1], and ``y`` int64 labels. Folder datasets may be any
    ``Dataset`` yielding ``(x, y)`` with ``x`` float in [0, 1]. Normalisation and augmentation are
    applied per batch by :func:`prepare_batch`, on the device the batch is on.

    Attributes:
        train: Training data (the search trains on it).
        val: Validation data carved from the training set (the search reads its accuracy).
        test: The official test data; never used to drive a search.
        num_classes: Number of classes.
        input_shape: ``(C, H, W)`` of one image.
        mean: Per-channel mean used for normalisation, on the [0, 1] scale.
        std: Per-channel standard deviation used for normalisation.
        augment: Whether training batches get random crop (padding ``H // 8``) and flip.
        name: Dataset name.
        classes: Class names, when the dataset has them.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool = False
    name: str = ""
    classes: tuple[str, ...] = ()

    def sizes(self) -> tuple[int, int, int]:
        """Number of examples in (train, val, test)."""
        return len(self.train), len(self.val), len(self.test)  # type: ignore[arg-type]


def split_indices(n: int, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Partition ``range(n)`` at random into parts of the given fractions (the last takes the rest).

    Args:
        n: Number of examples.
        fractions: Fraction of each part but the last; they must sum to less than 1.
        seed: Seed of the permutation.

    Returns:
        ``len(fractions) + 1`` sorted, disjoint index arrays covering ``range(n)``.
    """
    if any(f <= 0 for f in fractions) or sum(fractions) >= 1:
        raise ValueError(f"split fractions must be positive and sum to < 1, got {fractions}")
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([round(f * n) for f in fractions])
    return [np.sort(part) for part in np.split(order, bounds)]


def tensor_split(x: torch.Tensor, y: torch.Tensor, index: np.ndarray) -> TensorDataset:
    """``TensorDataset`` of the rows ``index`` of ``x`` and ``y`` (copied, contiguous)."""
    idx = torch.from_numpy(index)
    return TensorDataset(x[idx].contiguous(), y[idx].contiguous())


def subset(dataset: Dataset, index: np.ndarray) -> Dataset:
    """Rows ``index`` of any dataset (a ``TensorDataset`` stays a ``TensorDataset``)."""
    if isinstance(dataset, TensorDataset):
        x, y = dataset.tensors
        return tensor_split(x, y, index)
    return Subset(dataset, index.tolist())


def random_crop_flip(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Standard CIFAR augmentation of a batch: zero-pad, random crop back, random horizontal flip.

    The random draws come from ``generator`` (a CPU generator) whatever device ``x`` is on.

    Args:
        x: Images, shape (B, C, H, W), any dtype.
        padding: Pixels of zero padding on each side (4 for 32x32 CIFAR).
        generator: Source of the crop offsets and flips.

    Returns:
        Augmented images of the same shape and dtype.
    """
    b, c, h, w = x.shape
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flip reverses the columns read
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def prepare_batch(
    x: torch.Tensor, splits: Splits, train: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Turn a raw batch into network input: augment (training only), scale to [0, 1], normalise.

    Args:
        x: Batch of shape (B, C, H, W), ``uint8`` or float in [0, 1], on any device.
        splits: Gives ``mean``, ``std`` and whether to augment.
        train: Whether this is a training batch (only those are augmented).
        generator: CPU generator for the augmentation; required when it applies.

    Returns:
        Float32 batch on the device of ``x``.
    """
    if train and splits.augment:
        if generator is None:
            raise ValueError("augmentation needs an explicit torch.Generator")
        x = random_crop_flip(x, max(1, x.shape[-2] // 8), generator)
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    mean = torch.tensor(splits.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(splits.std, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of images (N, C, H, W) on the [0, 1] scale."""
    xf = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    mean = xf.mean(dim=(0, 2, 3))
    std = xf.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return tuple(mean.tolist()), tuple(std.tolist())
