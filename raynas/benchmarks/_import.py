"""Generic import: a user's own measurements (CSV or Parquet) as a tabular benchmark.

Each row names an architecture in its space's own notation (``space.from_string``) and gives
one or more metrics. Several rows of one cell become its runs. Tables may be partial:
``contains()`` tells whether a cell is tabulated and searchers keep to ``candidates()``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from raynas._errors import BenchmarkFormatError, InvalidArchitectureError, excerpt, parse_error
from raynas.benchmarks._table import TabularBenchmark
from raynas.spaces import get_space

TIME_FN = None


def import_table(
    path: str | Path,
    space: str,
    arch_column: str,
    metrics: dict[str, str],
    dataset: str | None = None,
) -> TabularBenchmark:
    """Build a benchmark named ``custom`` from ``path``.

    Args:
        path: A ``.csv`` or ``.parquet`` file.
        space: Name of the search space the architectures belong to.
        arch_column: Column holding each architecture in the space's notation.
        metrics: raynas metric name -> column, e.g. ``{"val_accuracy": "acc"}``.
        dataset: Free-form dataset label.
    """
    path = Path(path)
    if not path.is_file():
        raise BenchmarkFormatError(f"{path} does not exist")
    try:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
        else:  # read as text: Macro keys keep leading zeros, and numbers are checked below, row by row
            text = {c: pa.string() for c in (arch_column, *metrics.values())}
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=text))
        columns = table.column_names  # decoded here: a binary header fails inside this try
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        kind = "Parquet" if path.suffix == ".parquet" else "CSV"
        raise BenchmarkFormatError(f"{path}: not a readable {kind} file ({parse_error(exc)})") from None
    missing = [c for c in [arch_column, *metrics.values()] if c not in columns]
    if missing:
        raise BenchmarkFormatError(f"{path}: no column(s) {missing}; columns are {excerpt(columns, 10)}")
    if not metrics:
        raise ValueError("give at least one metric, e.g. --metric val_accuracy=COLUMN")
    if table.num_rows == 0:
        raise BenchmarkFormatError(f"{path}: the file has no rows, only a header; give one row per measurement")
    sp = get_space(space)
    groups: dict[str, list[int]] = {}
    strings: dict[str, str] = {}
    for i, text in enumerate(table.column(arch_column).to_pylist()):
        try:
            arch = sp.from_string(str(text))
            key = sp.key(arch)
        except InvalidArchitectureError as exc:
            raise BenchmarkFormatError(f"{path}: row {i + 1}: {exc}") from None
        groups.setdefault(key, []).append(i)
        strings.setdefault(key, sp.to_string(arch))
    runs = max(len(v) for v in groups.values())
    names = list(metrics)
    cols = [_numbers(path, table.column(metrics[m]).to_pylist(), metrics[m]) for m in names]
    values = np.full((len(groups), 1, runs, len(names)), np.nan)
    for c, idx in enumerate(groups.values()):
        for j, col in enumerate(cols):
            values[c, 0, : len(idx), j] = col[idx]
    bench = TabularBenchmark(
        "custom", sp, list(groups), [strings[k] for k in groups], values, names,
        dataset=dataset or path.stem, source=str(path),
        time_model="imported table: one simulated second per evaluation unless train_time is given",
    )
    return bench


def _numbers(path: Path, values: list, column: str) -> np.ndarray:
    """The ``values`` of a metric column as floats; an empty cell is a missing value (NaN)."""
    out = np.full(len(values), np.nan)
    for i, value in enumerate(values):
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            raise BenchmarkFormatError(f"{path}: row {i + 1}, column {column}: {excerpt(value)} is not a number"
                                       ) from None
    return out


def load_custom(path: Path, dataset: str, **options) -> TabularBenchmark:
    """Load a table written by ``raynas data import`` (a raynas Parquet file)."""
    if path.suffix != ".parquet":
        raise BenchmarkFormatError(f"{path}: run `raynas data import` first; it writes a Parquet file")
    return TabularBenchmark.from_parquet(path)
