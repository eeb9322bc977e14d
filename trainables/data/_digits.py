"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download)."""

from __future__ import annotations

import torch

from raynas.trainables.data._splits import Splits, channel_stats, split_indices, tensor_split


def load_digits(
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    image_size: int = 8,
    channels: int = 1,
) -> Splits:
    """The digits, scaled to [0, 1], split at random into train/val/test (60/20/20 by default).

    Args:
        seed: Seed of the split.
        val_fraction: Fraction of all images held out for validation.
        test_fraction: Fraction of all images held out for test.
        image_size: Side of the images; other than 8, bilinear upsampling (32 makes networks built
            for CIFAR run unchanged).
        channels: 1, or 3 to repeat the grey channel (for networks built for RGB input).

    Returns:
        In-memory float splits of shape (N, channels, image_size, image_size); ``mean``/``std``
        are measured on the training split.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    bunch = sk_load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)  # (N, 1, 8, 8)
    if image_size != 8:
        x = torch.nn.functional.interpolate(
            x, size=(image_size, image_size), mode="bilinear", align_corners=False
        ).clamp_(0.0, 1.0)
    x = x.expand(-1, channels, -1, -1).contiguous()  # (N, C, S, S)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    test_idx, val_idx, train_idx = split_indices(len(y), (test_fraction, val_fraction), seed)
    train = tensor_split(x, y, train_idx)
    mean, std = channel_stats(train.tensors[0])
    return Splits(
        train=train,
        val=tensor_split(x, y, val_idx),
        test=tensor_split(x, y, test_idx),
        num_classes=10,
        input_shape=(channels, image_size, image_size),
        mean=mean,
        std=std,
        augment=False,
        name="digits",
        classes=tuple(str(d) for d in range(10)),
    )
