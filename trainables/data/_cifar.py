"""CIFAR-10 and CIFAR-100 from the official python-pickle files, read by a restricted unpickler."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from raynas.trainables.data._splits import CIFAR_URL, DatasetError, Splits, split_indices, subset

# Per-channel statistics of the CIFAR training sets, as used by DARTS, NAS-Bench-201 and most NAS code.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

# The only globals the official files (and numpy re-pickles of them) need: numpy array and dtype
# reconstruction, and the bytes codec that Python 3 protocol-2 pickles use for ``bytes``.
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)

_LAYOUTS = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "labels": b"labels",
        "names": b"label_names",
        "classes": 10,
        "stats": (CIFAR10_MEAN, CIFAR10_STD),
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "labels": b"fine_labels",
        "names": b"fine_label_names",
        "classes": 100,
        "stats": (CIFAR100_MEAN, CIFAR100_STD),
    },
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays, so a crafted file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        """Resolve ``module.name`` only if it is one of the numpy array reconstruction globals."""
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: CIFAR files hold only numpy arrays, "
                "lists and bytes"
            )
        if module.startswith("numpy.core."):  # the files predate numpy 2; read them without its warning
            module = "numpy._core." + module.removeprefix("numpy.core.")
        return super().find_class(module, name)


def restricted_load(path: Path) -> Any:
    """Unpickle ``path`` (``encoding="bytes"``, as the official files need) with the restricted unpickler.

    Raises:
        DatasetError: The file is absent, unreadable, or asks for anything but numpy arrays.
    """
    try:
        data = path.read_bytes()
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except FileNotFoundError as exc:
        raise DatasetError(f"missing dataset file {path}") from exc
    except Exception as exc:  # truncated, not a pickle, or refused
        raise DatasetError(f"cannot read dataset file {path}: {type(exc).__name__}: {exc}") from exc


def _layout_message(name: str, folder: Path) -> str:
    spec = _LAYOUTS[name]
    files = ", ".join([*spec["train"], *spec["test"], spec["meta"]])
    return (
        f"{name}: expected the official python version in {folder} ({spec['folder']}/ holding "
        f"{files}); download and extract it from {CIFAR_URL}"
    )


def _read_batch(path: Path, labels_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one batch file; raises ``DatasetError``."""
    batch = restricted_load(path)
    if not isinstance(batch, dict) or b"data" not in batch or labels_key not in batch:
        raise DatasetError(f"{path} is not a CIFAR batch: expected a dict with b'data' and {labels_key!r}")
    data, labels = batch[b"data"], np.asarray(batch[labels_key])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{path}: b'data' must be a uint8 array of shape (N, 3072)")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise DatasetError(f"{path}: {labels_key!r} must hold one integer label per image")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{path}: labels must lie in [0, {num_classes})")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar(
    name: str, root: str | Path, seed: int = 0, val_fraction: float = 0.1, augment: bool = True
) -> Splits:
    """CIFAR-10 or CIFAR-100 from the official python-pickle files.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        root: The extracted folder (``cifar-10-batches-py`` / ``cifar-100-python``) or its parent.
        seed: Seed of the validation split carved from the training set.
        val_fraction: Fraction of the training set held out for validation.
        augment: Random crop 32 with padding 4 and horizontal flip on training batches.

    Returns:
        In-memory ``uint8`` splits, normalised per batch with the usual CIFAR statistics.

    Raises:
        DatasetError: The folder is missing or a file is malformed.
    """
    spec = _LAYOUTS[name]
    root = Path(root).expanduser()
    folder = root if (root / spec["meta"]).is_file() or root.name == spec["folder"] else root / spec["folder"]
    if not folder.is_dir():
        raise DatasetError(f"no dataset folder {folder}. " + _layout_message(name, root))
    try:
        meta = restricted_load(folder / spec["meta"])
        classes = tuple(c.decode() if isinstance(c, bytes) else str(c) for c in meta[spec["names"]])
        parts = [_read_batch(folder / f, spec["labels"], spec["classes"]) for f in spec["train"]]
        test_x, test_y = _read_batch(folder / spec["test"][0], spec["labels"], spec["classes"])
    except (DatasetError, KeyError, TypeError, AttributeError) as exc:
        raise DatasetError(f"{exc}. " + _layout_message(name, folder)) from exc
    x = torch.from_numpy(np.concatenate([p[0] for p in parts]))  # (N, 3, 32, 32) uint8
    y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    val_idx, train_idx = split_indices(len(y), (val_fraction,), seed)
    mean, std = spec["stats"]
    full = TensorDataset(x, y)
    return Splits(
        train=subset(full, train_idx),
        val=subset(full, val_idx),
        test=TensorDataset(torch.from_numpy(test_x), torch.from_numpy(test_y)),
        num_classes=spec["classes"],
        input_shape=(3, 32, 32),
        mean=mean,
        std=std,
        augment=augment,
        name=name,
        classes=classes,
    )
