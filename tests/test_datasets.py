"""Datasets: digits splits, CIFAR loaders on files in the official layout, clear errors, safe unpickling."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from raynas._errors import RaynasError, UnknownNameError
from raynas.trainables.data import (
    CIFAR_URL,
    DatasetError,
    load_dataset,
    prepare_batch,
    random_crop_flip,
    restricted_load,
)


def _rows(x: torch.Tensor) -> list[bytes]:
    return [row.numpy().tobytes() for row in x]


def test_digits_split_sizes_and_shapes():
    splits = load_dataset("digits", seed=0)
    assert splits.sizes() == (1079, 359, 359)  # 60/20/20 of 1,797
    assert splits.input_shape == (1, 8, 8) and splits.num_classes == 10
    x, y = splits.train.tensors
    assert x.shape == (1079, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(y.tolist()) == set(range(10))


def test_digits_split_is_fixed_by_the_seed_and_disjoint():
    a, b, c = load_dataset("digits", seed=3), load_dataset("digits", seed=3), load_dataset("digits", seed=4)
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(a, part).tensors[0], getattr(b, part).tensors[0])
    assert not torch.equal(a.val.tensors[1], c.val.tensors[1])
    # the three splits partition the dataset: together they hold every image exactly once
    from sklearn.datasets import load_digits

    full = torch.as_tensor(load_digits().images, dtype=torch.float32).div(16).reshape(-1, 64)
    parts = torch.cat([getattr(a, p).tensors[0].reshape(-1, 64) for p in ("train", "val", "test")])
    assert sorted(_rows(full)) == sorted(_rows(parts))


def test_digits_split_indices_are_disjoint():
    from raynas.trainables.data import split_indices

    parts = split_indices(1797, (0.2, 0.2), seed=0)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(1797))
    assert [len(p) for p in parts] == [359, 359, 1079]


def test_digits_upsampled_to_cifar_shape():
    splits = load_dataset("digits", image_size=32, channels=3)
    assert splits.input_shape == (3, 32, 32) and len(splits.mean) == 3
    assert splits.train.tensors[0].shape == (1079, 3, 32, 32)


def _write_cifar(root: Path, name: str, n_train: int = 40, n_test: int = 20) -> Path:
    """Write a small dataset in exactly the official python-pickle layout (protocol 2, bytes keys).

    CIFAR-10 gets its five training batches of ``n_train / 5`` images, CIFAR-100 one ``train`` file.
    """
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder, labels_key, classes = root / "cifar-10-batches-py", b"labels", 10
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
        test_file, meta_file, meta = "test_batch", "batches.meta", {b"label_names": [b"c%d" % i for i in range(10)]}
    else:
        folder, labels_key, classes = root / "cifar-100-python", b"fine_labels", 100
        train_files, test_file, meta_file = ["train"], "test", "meta"
        meta = {b"fine_label_names": [b"f%d" % i for i in range(100)], b"coarse_label_names": [b"k"] * 20}
    folder.mkdir(parents=True)

    def batch(n: int) -> dict:
        out = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            labels_key: rng.integers(0, classes, n).tolist(),
            b"batch_label": b"batch",
            b"filenames": [b"img%d.png" % i for i in range(n)],
        }
        if name == "cifar100":
            out[b"coarse_labels"] = rng.integers(0, 20, n).tolist()
        return out

    for f in train_files:
        (folder / f).write_bytes(pickle.dumps(batch(n_train // len(train_files)), protocol=2))
    (folder / test_file).write_bytes(pickle.dumps(batch(n_test), protocol=2))
    (folder / meta_file).write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def _official_test_images(folder: Path, file: str) -> np.ndarray:
    with open(folder / file, "rb") as fh:
        return pickle.load(fh, encoding="bytes")[b"data"]


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_loader_reads_the_official_layout(tmp_path, name):
    folder = _write_cifar(tmp_path, name)
    splits = load_dataset(name, root=tmp_path, seed=0, val_fraction=0.25)
    assert splits.sizes() == (30, 10, 20)
    assert splits.num_classes == (10 if name == "cifar10" else 100)
    assert splits.input_shape == (3, 32, 32) and splits.augment
    assert len(splits.classes) == splits.num_classes
    x, y = splits.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.int64
    test_file = "test_batch" if name == "cifar10" else "test"
    expected = _official_test_images(folder, test_file).reshape(-1, 3, 32, 32)
    assert np.array_equal(splits.test.tensors[0].numpy(), expected)  # (N, 3072) rows are R, G, B planes
    # the folder itself works as root too, and the split is fixed by the seed
    again = load_dataset(name, root=folder, seed=0, val_fraction=0.25)
    assert torch.equal(again.val[:][0], splits.val[:][0])
    other = load_dataset(name, root=folder, seed=1, val_fraction=0.25)
    assert not torch.equal(other.val[:][1], splits.val[:][1]) or not torch.equal(other.val[:][0], splits.val[:][0])


def test_missing_folder_gives_one_clear_error(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", root=tmp_path / "nowhere")
    message = str(info.value)
    assert "cifar-10-batches-py" in message and "data_batch_1" in message and CIFAR_URL in message
    assert "\n" not in message
    assert isinstance(info.value, RaynasError) and isinstance(info.value, ValueError)


def test_missing_batch_file_names_the_layout(tmp_path):
    folder = _write_cifar(tmp_path, "cifar10")
    (folder / "data_batch_3").unlink()  # e.g. an interrupted extraction
    with pytest.raises(DatasetError, match="data_batch_3.*expected the official python version"):
        load_dataset("cifar10", root=folder)


def test_malformed_pickle_gives_the_clear_error(tmp_path):
    folder = _write_cifar(tmp_path, "cifar100")
    (folder / "train").write_bytes(b"this is not a pickle")
    with pytest.raises(DatasetError, match="cannot read dataset file .*train.*" + CIFAR_URL.replace(".", r"\.")):
        load_dataset("cifar100", root=tmp_path)
    (folder / "train").write_bytes(pickle.dumps({b"data": [1, 2, 3]}, protocol=2))
    with pytest.raises(DatasetError, match="not a CIFAR batch"):
        load_dataset("cifar100", root=tmp_path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pickle",))


def test_restricted_unpickler_refuses_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit()}, protocol=2))
    with pytest.raises(DatasetError, match="refusing to load global (os|posix|nt)\\.system"):
        restricted_load(path)
    assert not (tmp_path / "pwned-by-pickle").exists()


def test_unknown_dataset_and_imagefolder_without_torchvision(tmp_path):
    with pytest.raises(UnknownNameError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install torchvision"):
            load_dataset("imagefolder", root=tmp_path)
    else:
        with pytest.raises(DatasetError):
            load_dataset("imagefolder", root=tmp_path / "nowhere")


def test_crop_flip_is_seeded_and_keeps_pixels():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    a = random_crop_flip(x, 1, torch.Generator().manual_seed(0))
    b = random_crop_flip(x, 1, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    assert set(a.unique().tolist()) <= set(x.unique().tolist()) | {0.0}
    # no padding: only flips; each image is either itself or mirrored
    c = random_crop_flip(x, 0, torch.Generator().manual_seed(1))
    for i in range(2):
        assert torch.equal(c[i], x[i]) or torch.equal(c[i], x[i].flip(-1))


def test_prepare_batch_normalises_uint8(tmp_path):
    _write_cifar(tmp_path, "cifar10")
    splits = load_dataset("cifar10", root=tmp_path, augment=False)
    x = prepare_batch(splits.train[:][0], splits, train=True)
    expected = (splits.train[:][0].float() / 255 - torch.tensor(splits.mean).view(1, 3, 1, 1)) / torch.tensor(
        splits.std
    ).view(1, 3, 1, 1)
    assert torch.allclose(x, expected)
