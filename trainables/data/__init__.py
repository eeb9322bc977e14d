"""Datasets for training networks: digits (bundled), CIFAR-10/100 (official files), image folders.

Example:
    >>> from raynas.trainables.data import load_dataset
    >>> splits = load_dataset("digits", seed=0)
    >>> splits.sizes(), splits.input_shape
    ((1079, 359, 359), (1, 8, 8))
"""

from __future__ import annotations

from pathlib import Path

from raynas._errors import UnknownNameError
from raynas.trainables.data._cifar import RestrictedUnpickler, load_cifar, restricted_load
from raynas.trainables.data._digits import load_digits
from raynas.trainables.data._folder import load_image_folder
from raynas.trainables.data._splits import (
    CIFAR_URL,
    DatasetError,
    Splits,
    prepare_batch,
    random_crop_flip,
    split_indices,
)

__all__ = [
    "CIFAR_URL",
    "DATASETS",
    "DatasetError",
    "RestrictedUnpickler",
    "Splits",
    "load_dataset",
    "prepare_batch",
    "random_crop_flip",
    "restricted_load",
    "split_indices",
]

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")


def load_dataset(
    name: str,
    root: str | Path | None = None,
    seed: int = 0,
    val_fraction: float | None = None,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    augment: bool | None = None,
) -> Splits:
    """Load a dataset as train/val/test splits.

    Args:
        name: One of ``DATASETS``.
        root: Folder of the files (CIFAR, image folders); unused for ``digits``.
        seed: Seed of the validation (and, where carved, test) split.
        val_fraction: Held-out fraction; defaults to 0.2 of all images for digits (with 0.2 for
            test: 60/20/20) and 0.1 of the training set otherwise.
        image_size: digits: 8 (native) or e.g. 32 to upsample; image folders: resize side (32).
        channels: digits only: 1 (native) or 3.
        augment: Crop-and-flip on training batches; defaults to on except for digits.

    Returns:
        The splits.

    Raises:
        UnknownNameError: ``name`` is not a known dataset.
        DatasetError: The files are missing or malformed.
    """
    if name == "digits":
        splits = load_digits(seed, val_fraction or 0.2, 0.2, image_size or 8, channels or 1)
        return splits if not augment else _with_augment(splits)
    if name not in DATASETS:
        raise UnknownNameError("dataset", name, DATASETS)
    if channels not in (None, 3):
        raise ValueError(f"{name} images have 3 channels, got channels={channels}")
    if root is None:
        raise DatasetError(f"{name} needs root=, the folder of its files")
    aug = True if augment is None else augment
    if name == "imagefolder":
        return load_image_folder(root, seed, val_fraction or 0.1, 0.1, image_size or 32, aug)
    if image_size not in (None, 32):
        raise ValueError(f"{name} images are 32x32, got image_size={image_size}")
    return load_cifar(name, root, seed, val_fraction or 0.1, aug)


def _with_augment(splits: Splits) -> Splits:
    from dataclasses import replace

    return replace(splits, augment=True)
