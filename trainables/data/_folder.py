"""Any image-classification folder, through torchvision's ``ImageFolder`` (optional dependency)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from raynas.trainables.data._splits import DatasetError, Splits, split_indices, subset

# ImageNet statistics: the usual default for natural images of unknown origin.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

_LAYOUT = (
    "expected ROOT/<class>/<image> (split into train/val/test by the seed) or "
    "ROOT/train/<class>/<image> with ROOT/test/<class>/<image> (val carved from train)"
)


def _torchvision():
    try:
        import torchvision
    except ImportError as exc:
        raise ImportError(
            "image folders are read with torchvision's ImageFolder: pip install torchvision"
        ) from exc
    return torchvision


def load_image_folder(
    root: str | Path,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    image_size: int = 32,
    augment: bool = True,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> Splits:
    """An image folder, every image resized to ``image_size`` x ``image_size`` RGB.

    Args:
        root: ``ROOT/<class>/...`` or ``ROOT/train`` + ``ROOT/test`` in that layout.
        seed: Seed of the splits carved at random.
        val_fraction: Fraction of the training images held out for validation.
        test_fraction: Fraction of all images held out for test when there is no ``ROOT/test``.
        image_size: Side the images are resized to.
        augment: Random crop and flip on training batches.
        mean: Per-channel normalisation mean.
        std: Per-channel normalisation std.

    Returns:
        Lazily decoded splits (``Dataset`` objects, read through a ``DataLoader``).

    Raises:
        ImportError: torchvision is not installed.
        DatasetError: The folder is missing or holds no images in the layout.
    """
    tv = _torchvision()
    root = Path(root).expanduser()
    transform = tv.transforms.Compose(
        [
            tv.transforms.Lambda(lambda img: img.convert("RGB")),
            tv.transforms.Resize((image_size, image_size)),
            tv.transforms.ToTensor(),
        ]
    )
    try:
        if (root / "train").is_dir():
            train_all = tv.datasets.ImageFolder(str(root / "train"), transform=transform)
            test = tv.datasets.ImageFolder(str(root / "test"), transform=transform)
            val_idx, train_idx = split_indices(len(train_all), (val_fraction,), seed)
        else:
            train_all = test = tv.datasets.ImageFolder(str(root), transform=transform)
            test_idx, val_idx, train_idx = split_indices(
                len(train_all), (test_fraction, val_fraction), seed
            )
            test = subset(train_all, test_idx)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise DatasetError(f"cannot read image folder {root}: {exc}; {_LAYOUT}") from exc
    return Splits(
        train=subset(train_all, np.asarray(train_idx)),
        val=subset(train_all, np.asarray(val_idx)),
        test=test,
        num_classes=len(train_all.classes),
        input_shape=(3, image_size, image_size),
        mean=tuple(mean),
        std=tuple(std),
        augment=augment,
        name="imagefolder",
        classes=tuple(train_all.classes),
    )
