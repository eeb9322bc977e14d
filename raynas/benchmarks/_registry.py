"""Which benchmarks exist, where their data comes from, and how to find it on disk."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from raynas._errors import BenchmarkNotFoundError, UnknownNameError


@dataclass(frozen=True)
class BenchmarkSpec:
    """Static facts about one tabular benchmark.

    Attributes:
        name: Benchmark name (also the name of its search space unless ``space`` says otherwise).
        space: Search-space name.
        loader: ``"module:function"``; called as ``function(path, dataset, **options)``.
        files: File names searched for in data folders, most preferred first.
        datasets: Datasets the benchmark covers; the first is the default.
        origin: Where a user downloads the official data.
        embedded: True when the data ships with an installed package (no file needed).
        records: Records (rows) of the complete official file, where that is known: a file
            with another count is incomplete (e.g. a download cut at a line break).
    """

    name: str
    space: str
    loader: str
    files: tuple[str, ...]
    datasets: tuple[str, ...]
    origin: str
    embedded: bool = False
    records: int | None = None

    def parquet_name(self, dataset: str | None) -> str:
        return f"{self.name}_{dataset}.parquet" if len(self.datasets) > 1 else f"{self.name}.parquet"


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec(
            "nasbench101",
            "nasbench101",
            "raynas.benchmarks._nasbench101:load_nasbench101",
            ("nasbench_only108.tfrecord", "nasbench_full.tfrecord"),
            ("cifar10",),
            "https://storage.googleapis.com/nasbench/nasbench_only108.tfrecord "
            "(or nasbench_full.tfrecord), from google-research/nasbench",
        ),
        BenchmarkSpec(
            "nasbench201",
            "nasbench201",
            "raynas.benchmarks._nasbench201:load_nasbench201",
            ("nats_bench.csv", "NAS-Bench-201-v1_1-096897.pth", "NAS-Bench-201-v1_0-e61699.pth"),
            ("cifar10", "cifar100", "ImageNet16-120"),
            "a CSV with the columns of NATS-Bench's topology results (e.g. v-tao/nats-bench-landscape "
            "nats_bench.csv), or the official NAS-Bench-201 .pth file from D-X-Y/NAS-Bench-201",
            records=15_625,  # every cell of the space, isomorphic ones included
        ),
        BenchmarkSpec(
            "nasbench_macro",
            "nasbench_macro",
            "raynas.benchmarks._nasbench_macro:load_nasbench_macro",
            ("nas-bench-macro_cifar10.json",),
            ("cifar10",),
            "nas-bench-macro_cifar10.json from https://github.com/xiusu/NAS-Bench-Macro (data/)",
            records=6_561,
        ),
        BenchmarkSpec(
            "nasbench_graph",
            "nasbench_graph",
            "raynas.benchmarks._nasbench_graph:load_nasbench_graph",
            (),
            ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv", "proteins"),
            "the PyPI package nas-bench-graph (installed with raynas)",
            embedded=True,
        ),
        BenchmarkSpec(
            "custom",
            "",
            "raynas.benchmarks._import:load_custom",
            (),
            ("custom",),
            "your own measurements: `raynas data import --space SPACE --arch-column COL "
            "--metric val_accuracy=COL FILE`, then --data the Parquet file it writes",
        ),
    )
}


def get_spec(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        raise UnknownNameError("benchmark", name, BENCHMARKS)
    return BENCHMARKS[name]


def check_dataset(spec: BenchmarkSpec, dataset: str | None) -> str:
    if dataset is None:
        return spec.datasets[0]
    if spec.name == "custom":  # an imported table's dataset is a free-form label
        return dataset
    if dataset not in spec.datasets:
        raise UnknownNameError(f"dataset of {spec.name}", dataset, spec.datasets)
    return dataset


def warn_incomplete(name: str, found: int, source: str, expected: int | None = None, unit: str = "records") -> None:
    """Warn when a file of benchmark ``name`` holds ``found`` of its ``expected`` (default: known) records."""
    expected = BENCHMARKS[name].records if expected is None else expected
    if expected is not None and found != expected:
        warnings.warn(
            f"{source} holds {found:,} {unit} where the complete {name} has {expected:,}: the file is "
            "incomplete (a cut download?), so results on it are those of a partial table and its optimum "
            "may not be the benchmark's",
            stacklevel=3,
        )


def user_data_dir() -> Path:
    """Where ``raynas data convert`` writes: ``$XDG_DATA_HOME/raynas`` or ``~/.local/share/raynas``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "raynas"


def search_dirs(path: str | os.PathLike | None = None) -> list[Path]:
    dirs = []
    if path is not None and Path(path).is_dir():
        dirs.append(Path(path))
    env = os.environ.get("RAYNAS_DATA")
    if env:
        dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    dirs.append(user_data_dir())
    return dirs


def locate(spec: BenchmarkSpec, dataset: str | None, path: str | os.PathLike | None = None) -> Path:
    """Find the data file of ``spec``.

    An explicit file ``path`` wins. Otherwise each folder (``path``, ``$RAYNAS_DATA``, the user
    data folder) is searched, first for a converted Parquet file, then for the official files,
    directly and one level down (``folder/<benchmark>/file``).
    """
    if path is not None and Path(path).is_file():
        return Path(path)
    if path is not None and not Path(path).exists():
        raise BenchmarkNotFoundError(
            f"{spec.name}: {path} does not exist; expected one of "
            f"{', '.join((spec.parquet_name(dataset),) + spec.files)}. Get the data from {spec.origin}"
        )
    names = (spec.parquet_name(dataset),) + spec.files
    tried = []
    for folder in search_dirs(path):
        for sub in (folder, folder / spec.name):
            for fname in names:
                cand = sub / fname
                tried.append(str(cand))
                if cand.is_file():
                    return cand
    raise BenchmarkNotFoundError(
        f"{spec.name}: no data file found; looked for {', '.join(names)} in "
        f"{', '.join(str(d) for d in search_dirs(path))}. Get the data from {spec.origin}, then pass "
        "--data PATH (or load(..., path=PATH)), set RAYNAS_DATA to its folder, or run "
        f"`raynas data convert {spec.name} FILE`"
    )


def find(spec: BenchmarkSpec, dataset: str | None = None, path=None) -> Path | None:
    """Like :func:`locate` but returns None when nothing is found."""
    try:
        return locate(spec, dataset, path)
    except BenchmarkNotFoundError:
        return None
