"""NAS-Bench-201 from a NATS-Bench topology CSV or the official ``.pth`` file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from raynas._errors import BenchmarkFormatError, InvalidArchitectureError, parse_error
from raynas.benchmarks._registry import warn_incomplete
from raynas.benchmarks._table import TabularBenchmark
from raynas.spaces._nasbench201 import NASBench201Space

CSV_COLUMNS = {
    "cifar10": "CIFAR10TestAccuracy200Epochs",
    "cifar100": "CIFAR100TestAccuracy200Epochs",
    "ImageNet16-120": "ImageNetTestAccuracy200Epochs",
}
TIME_MODEL = (
    "no training time in the CSV: simulated seconds = 1000 x (1 + n_conv3x3 + n_conv1x1/9 "
    "+ n_avg_pool/9), i.e. proportional to the cell's convolution FLOPs"
)


def time_fn(arch, results) -> float:
    """Cost model for tables without ``train_time`` (see ``TIME_MODEL``)."""
    return 1000.0 * (
        1.0 + arch.count("nor_conv_3x3") + (arch.count("nor_conv_1x1") + arch.count("avg_pool_3x3")) / 9
    )


TIME_FN = time_fn


def load_nasbench201(path: Path, dataset: str, **options) -> TabularBenchmark:
    """Load NAS-Bench-201 results for ``dataset``; isomorphic cells are merged by mean."""
    if path.suffix == ".pth":
        return _load_official(path, dataset, **options)
    try:
        table = pacsv.read_csv(path)
        columns = table.column_names  # decoded here: a binary header fails inside this try
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise BenchmarkFormatError(f"{path}: not a readable CSV ({parse_error(exc)})") from None
    column = CSV_COLUMNS[dataset]
    missing = {"ArchitectureString", column} - set(columns)
    if missing:
        raise BenchmarkFormatError(
            f"{path}: missing column(s) {sorted(missing)}; expected the columns of NATS-Bench's "
            f"topology CSV ({', '.join(CSV_COLUMNS.values())}, ArchitectureString)"
        )
    strings = table.column("ArchitectureString").to_pylist()
    acc = table.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    return _build(strings, acc, dataset, str(path))


def _build(strings: list[str], acc: np.ndarray, dataset: str, source: str) -> TabularBenchmark:
    warn_incomplete("nasbench201", len(strings), source)
    space = NASBench201Space()
    groups: dict[str, list[int]] = {}
    first: dict[str, str] = {}
    for i, text in enumerate(strings):
        try:
            key = space.key(space.from_string(text))
        except InvalidArchitectureError as exc:
            raise BenchmarkFormatError(f"{source}: row {i + 1}: {exc}") from None
        groups.setdefault(key, []).append(i)
        first.setdefault(key, text)
    keys = list(groups)
    values = np.array([np.nanmean(acc[groups[k]]) for k in keys]).reshape(-1, 1, 1, 1)
    return TabularBenchmark(
        "nasbench201", space, keys, [first[k] for k in keys], values, ["test_accuracy"],
        dataset=dataset, source=source, time_model=TIME_MODEL, time_fn=time_fn,
    )


def _load_official(path: Path, dataset: str, **options) -> TabularBenchmark:
    """Read the official NAS-Bench-201 file through its PyPI API (``pip install nas-bench-201``)."""
    try:
        from nas_201_api import NASBench201API
    except ImportError:
        raise ImportError(
            f"{path} is an official NAS-Bench-201 file; reading it needs its API: "
            "pip install nas-bench-201 (or pip install 'raynas[nb201]')"
        ) from None
    api = NASBench201API(str(path), verbose=False)
    strings, acc = [], []
    for i in range(len(api)):
        info = api.get_more_info(i, dataset, hp="200", is_random=False)
        strings.append(api.arch(i))
        acc.append(info["test-accuracy"])
    return _build(strings, np.asarray(acc, dtype=np.float64), dataset, str(path))
