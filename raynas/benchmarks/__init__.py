"""Tabular benchmarks: ``load(name, ...)`` returns a :class:`TabularBenchmark`.

Example:
    >>> from raynas import benchmarks
    >>> bench = benchmarks.load("nasbench_graph", dataset="cora")
    >>> round(bench.optimum("val_accuracy"), 2)
    81.93
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from raynas._errors import BenchmarkFormatError
from raynas._storage import fetch, is_uri
from raynas.benchmarks._registry import (
    BENCHMARKS,
    BenchmarkSpec,
    check_dataset,
    find,
    get_spec,
    locate,
    user_data_dir,
    warn_incomplete,
)
from raynas.benchmarks._table import COST_METRICS, MINIMISED, TabularBenchmark, default_mode


def _loader(spec: BenchmarkSpec):
    module, func = spec.loader.split(":")
    return getattr(importlib.import_module(module), func)


def load(
    name: str,
    path: str | os.PathLike | None = None,
    dataset: str | None = None,
    **options: Any,
) -> TabularBenchmark:
    """Load the tabular benchmark ``name``.

    Args:
        name: One of ``benchmark_names()``.
        path: A data file or a folder. Defaults to ``$RAYNAS_DATA`` and then the user data
            folder, searched for the benchmark's known file names (converted Parquet first).
            A storage URI of a file (``s3://bucket/nb201.parquet``) is downloaded once into the
            user cache folder (:func:`raynas._storage.fetch`).
        dataset: Which dataset's results (the benchmark's first by default).
        **options: Loader-specific options.

    Raises:
        UnknownNameError: unknown benchmark or dataset (the message lists valid ones).
        BenchmarkNotFoundError: no data file; the message says where the official data comes from.
        BenchmarkFormatError: the file is corrupt; the message names the file and offset.
    """
    spec = get_spec(name)
    dataset = check_dataset(spec, dataset)
    loader = _loader(spec)
    if spec.embedded and path is None:
        return loader(None, dataset, **options)
    if is_uri(path):
        path = fetch(os.fspath(path))
    file = locate(spec, dataset, path)
    if file.suffix == ".parquet":
        bench = TabularBenchmark.from_parquet(file)
        if bench.name != spec.name or (spec.name != "custom" and (bench.dataset or dataset) != dataset):
            raise BenchmarkFormatError(
                f"{file} holds {bench.name}/{bench.dataset}, not {spec.name}/{dataset}"
            )
        bench.time_fn = getattr(importlib.import_module(spec.loader.split(":")[0]), "TIME_FN", None)
        if spec.records is not None and bench.partial:  # converted from an incomplete file
            warn_incomplete(spec.name, len(bench), str(file), bench.space.n_classes, "cells")
        return bench
    return loader(file, dataset, **options)


def benchmark_names() -> list[str]:
    return list(BENCHMARKS)


__all__ = [
    "BENCHMARKS",
    "COST_METRICS",
    "MINIMISED",
    "BenchmarkSpec",
    "TabularBenchmark",
    "benchmark_names",
    "check_dataset",
    "default_mode",
    "find",
    "get_spec",
    "load",
    "locate",
    "user_data_dir",
]
