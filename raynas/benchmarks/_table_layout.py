"""The Arrow / Parquet layout of a `TabularBenchmark`: writing it and reading it back.

A table is stored long: one row per (cell, fidelity, run) with a column per metric, next to
the layout columns ``cell``, ``key``, ``arch``, ``fidelity`` and ``run``; what the rows do not
say (name, dataset, space, fidelities, runs, time model) is JSON under the schema metadata key
``raynas``. :class:`raynas.benchmarks._table.TabularBenchmark` builds on these functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raynas._errors import BenchmarkFormatError
from raynas.spaces import Space, get_space

if TYPE_CHECKING:
    from raynas.benchmarks._table import TabularBenchmark

_FORMAT_VERSION = 2
_LAYOUT_COLUMNS = ("cell", "key", "arch", "fidelity", "run")

#: ``column(name)`` reads one column of a stored table.
ColumnReader = Callable[[str], pa.ChunkedArray]


def to_arrow(bench: TabularBenchmark) -> pa.Table:
    """Long table of ``bench``: one row per (cell, fidelity, run) with every metric as a column.

    ``cell`` numbers the cells; their ``key`` and ``arch`` string are written on each cell's
    first row only (null elsewhere), which keeps million-row tables small and fast to read.
    Rows where every metric is NaN are left out.
    """
    n, f, s, m = bench.values.shape
    cell = np.repeat(np.arange(n, dtype=np.int32), f * s)
    fid = np.tile(np.repeat(np.arange(f), s), n)
    run = np.tile(np.arange(s), n * f)
    flat = bench.values.reshape(n * f * s, m)
    keep = ~np.all(np.isnan(flat), axis=1)
    cell, fid, run, flat = cell[keep], fid[keep], run[keep], flat[keep]
    first = np.ones(len(cell), dtype=bool)
    first[1:] = cell[1:] != cell[:-1]
    fids = np.array([-1 if x is None else x for x in bench.fidelities], dtype=np.int32)
    keys = np.asarray(bench.keys, dtype=object)
    strings = np.asarray(bench.strings, dtype=object)
    cols = {
        "cell": pa.array(cell),
        "key": pa.array(np.where(first, keys[cell], None), pa.string()),
        "arch": pa.array(np.where(first, strings[cell], None), pa.string()),
        "fidelity": pa.array(fids[fid]),
        "run": pa.array(run.astype(np.int16)),
    }
    for j, name in enumerate(bench.metrics):
        cols[name] = pa.array(flat[:, j])
    meta = {
        "raynas": json.dumps(
            {
                "format": _FORMAT_VERSION,
                "name": bench.name,
                "dataset": bench.dataset,
                "space": bench.space.name,
                "space_options": bench.space.options,
                "fidelities": bench.fidelities,
                "runs": s,
                "time_model": bench.time_model,
            }
        )
    }
    return pa.table(cols).replace_schema_metadata(meta)


def write_parquet(table: pa.Table, path: str | Path) -> Path:
    """Write ``table`` (zstd-compressed) to ``path`` atomically, through a ``.tmp`` sibling."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return path


def open_parquet(path: Path) -> tuple[pa.Schema, ColumnReader]:
    """The schema of the Parquet file at ``path`` and a reader of one column at a time.

    Raises:
        BenchmarkFormatError: The file, or later a column of it, is unreadable.
    """
    try:
        pfile = pq.ParquetFile(path)
        schema = pfile.schema_arrow
    except (pa.ArrowInvalid, OSError) as exc:
        raise BenchmarkFormatError(f"{path}: not a readable Parquet file ({exc})") from exc

    def column(name: str) -> pa.ChunkedArray:
        try:
            return pfile.read(columns=[name]).column(0)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BenchmarkFormatError(f"{path}: column {name!r} is unreadable ({exc})") from exc

    return schema, column


def from_columns(
    schema: pa.Schema, column: ColumnReader, source: str, space: Space | None
) -> dict[str, Any]:
    """The `TabularBenchmark` arguments stored in a table of :func:`to_arrow`'s layout.

    Args:
        schema: The table's schema (with the ``raynas`` metadata).
        column: Reads one column by name; columns are read one at a time (bounded memory).
        source: Where the table came from, for messages and ``TabularBenchmark.source``.
        space: The search space; by default the one named in the metadata.

    Returns:
        Keyword arguments of ``TabularBenchmark`` (``name``, ``space``, ``keys``, ``strings``,
        ``values``, ``metrics``, ``fidelities``, ``dataset``, ``source``, ``time_model``).

    Raises:
        BenchmarkFormatError: The table was not written by raynas, or in another layout.
    """
    meta_raw = (schema.metadata or {}).get(b"raynas")
    if meta_raw is None:
        raise BenchmarkFormatError(
            f"{source or 'table'} was not written by raynas (no 'raynas' schema metadata); "
            "import foreign tables with `raynas data import`"
        )
    meta = json.loads(meta_raw)
    names = schema.names
    if meta.get("format") != _FORMAT_VERSION or not set(_LAYOUT_COLUMNS) <= set(names):
        raise BenchmarkFormatError(
            f"{source or 'table'}: unsupported raynas table layout (format {meta.get('format')}); "
            "convert the official data again with `raynas data convert`"
        )
    space = space or get_space(meta["space"], **meta.get("space_options", {}))
    fidelities = [None if x in (-1, None) else int(x) for x in meta["fidelities"]]
    metrics = [c for c in names if c not in _LAYOUT_COLUMNS]
    raw_cell = column("cell").to_numpy().astype(np.int64)
    key_col = column("key")
    first = key_col.is_valid().to_numpy(zero_copy_only=False)
    keys = key_col.filter(first).to_pylist()
    del key_col
    strings = column("arch").filter(first).to_pylist()
    # Renumber cells 0..n-1 in order of appearance (their first rows).
    remap = np.full(int(raw_cell.max()) + 1 if len(raw_cell) else 0, -1, dtype=np.int64)
    remap[raw_cell[first]] = np.arange(int(first.sum()))
    cell = remap[raw_cell]
    del raw_cell, remap
    if len(cell) and cell.min() < 0:
        raise BenchmarkFormatError(f"{source or 'table'}: a cell has rows but no key")
    fid_raw = column("fidelity").to_numpy()
    fid = np.zeros(len(fid_raw), dtype=np.int64)
    for i, x in enumerate(fidelities):
        fid[fid_raw == (-1 if x is None else x)] = i
    run = column("run").to_numpy().astype(np.int64)
    flat = np.ravel_multi_index((cell, fid, run), (len(keys), len(fidelities), int(meta["runs"])))
    del cell, fid, run, fid_raw
    values = np.full((len(keys), len(fidelities), int(meta["runs"]), len(metrics)), np.nan)
    view = values.reshape(-1, len(metrics))
    for j, name in enumerate(metrics):
        view[flat, j] = column(name).to_numpy()
    del flat
    return {
        "name": meta["name"],
        "space": space,
        "keys": keys,
        "strings": strings,
        "values": values,
        "metrics": metrics,
        "fidelities": fidelities,
        "dataset": meta.get("dataset"),
        "source": source,
        "time_model": meta.get("time_model"),
    }
