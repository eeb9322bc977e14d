"""`TabularBenchmark`: a lookup table of measured results over a search space.

Results live in a dense ``float64`` array indexed ``(cell, fidelity, seed, metric)`` (NaN where
not measured), next to the list of canonical cell keys; the same data round-trips through a
long-format ``pyarrow.Table`` (one row per cell, fidelity and seed) for Parquet storage.
Queries go by canonical key, so isomorphic encodings of one cell share their row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raynas._errors import (
    BenchmarkFormatError,
    CellNotTabulatedError,
    InvalidArchitectureError,
    UnknownNameError,
)
from raynas.spaces import Arch, Space, get_space

#: Metrics where smaller is better; every other metric is maximised.
MINIMISED = frozenset({"params", "flops", "latency", "train_time", "loss", "val_loss"})
#: Metrics that describe the cell itself (known without training it).
COST_METRICS = ("params", "flops", "latency")
_FORMAT_VERSION = 2
_LAYOUT_COLUMNS = ("cell", "key", "arch", "fidelity", "run")


def default_mode(metric: str) -> str:
    return "min" if metric in MINIMISED else "max"


class TabularBenchmark:
    """Measured results of a search space, queried by architecture.

    Args:
        name: Benchmark name, e.g. ``"nasbench201"``.
        space: Its search space.
        keys: Canonical key of each tabulated cell (``space.key``).
        strings: ``space.to_string`` of a representative encoding of each cell.
        values: ``(n_cells, n_fidelities, n_seeds, n_metrics)`` results, NaN where absent.
        metrics: Metric names (shared across benchmarks: ``val_accuracy``, ``test_accuracy``,
            ``params``, ``flops``, ``latency``, ``train_time``). Accuracies are in percent.
        fidelities: Training budgets (epochs) of axis 1; ``[None]`` for single-fidelity tables.
        dataset: The dataset the results were measured on.
        source: Where the data came from (file path or package).
        time_model: How simulated evaluation time is derived, in words.
        time_fn: Picklable ``f(arch, results) -> seconds`` for simulated evaluation time, used
            where the table has no ``train_time``.

    Example:
        >>> bench = load("nasbench201", dataset="cifar10")  # doctest: +SKIP
        >>> bench.query(bench.space.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
        ...             "|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"))  # doctest: +SKIP
        {'test_accuracy': 94.37333333333333}
    """

    def __init__(
        self,
        name: str,
        space: Space,
        keys: Sequence[str],
        strings: Sequence[str],
        values: np.ndarray,
        metrics: Sequence[str],
        fidelities: Sequence[int | None] = (None,),
        dataset: str | None = None,
        source: str = "",
        time_model: str | None = None,
        time_fn: Callable[[Arch, dict[str, float]], float] | None = None,
    ):
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 4 or values.shape != (
            len(keys),
            len(fidelities),
            values.shape[2],
            len(metrics),
        ):
            raise BenchmarkFormatError(
                f"{name}: values of shape {values.shape} do not match {len(keys)} cells x "
                f"{len(fidelities)} fidelities x seeds x {len(metrics)} metrics"
            )
        self.name = name
        self.space = space
        self.keys = list(keys)
        self.strings = list(strings)
        self.values = values
        self.metrics = list(metrics)
        self.fidelities = list(fidelities)
        self.dataset = dataset
        self.source = source
        self.time_model = time_model
        self.time_fn = time_fn
        self._index = {k: i for i, k in enumerate(self.keys)}
        n_classes = getattr(space, "n_classes", None)
        #: True when some cells of the space have no row; searchers then keep to candidates().
        self.partial = n_classes is None or len(self.keys) < n_classes
        if len(self._index) != len(self.keys):
            raise BenchmarkFormatError(f"{name}: duplicate cell keys in {source or 'the table'}")
        with np.errstate(all="ignore"), _quiet_nan_warnings():
            self._mean = np.nanmean(values, axis=2)  # (N, F, M)
        self._mean_rows: list[list[dict[str, float]]] = [[] for _ in self.fidelities]
        self._arch_rows: dict[Arch, int] = {}
        self._archs: list[Arch] | None = None

    # ------------------------------------------------------------------ lookups
    @property
    def n_seeds(self) -> int:
        return self.values.shape[2]

    def __len__(self) -> int:
        return len(self.keys)

    def row(self, arch: Arch) -> int:
        """Row index of ``arch``; raises if it is invalid or not tabulated."""
        row = self._arch_rows.get(arch)
        if row is None:
            key = self.space.key(arch)  # validates
            row = self._index.get(key)
            if row is None:
                raise CellNotTabulatedError(
                    f"{self.name}: cell {key!r} is not in this table ({len(self)} cells from "
                    f"{self.source or 'memory'}); keep to benchmark.candidates()"
                )
            if len(self._arch_rows) < 2_000_000:
                self._arch_rows[arch] = row
        return row

    def contains(self, arch: Arch) -> bool:
        """Whether ``arch`` is a valid cell with a row in this table."""
        try:
            self.row(arch)
        except (CellNotTabulatedError, InvalidArchitectureError):
            return False
        return True

    def _fidelity_index(self, fidelity: int | None) -> int:
        if fidelity is None:
            return len(self.fidelities) - 1
        try:
            return self.fidelities.index(fidelity)
        except ValueError:
            raise UnknownNameError("fidelity", fidelity, self.fidelities) from None

    def query(self, arch: Arch, fidelity: int | None = None, seed: int | None = None) -> dict:
        """Results of ``arch``: the mean over runs, or run ``seed`` when given.

        Args:
            arch: An architecture of ``self.space``.
            fidelity: Training budget; defaults to the largest.
            seed: Index of one recorded run (``0 .. n_seeds-1``).

        Returns:
            ``{metric: value}`` for every metric measured for this cell (no NaNs).
        """
        row = self.row(arch)
        f = self._fidelity_index(fidelity)
        if seed is None:
            cache = self._mean_rows[f]
            if not cache:
                cache.extend(self._rows_as_dicts(self._mean[:, f, :]))
            out = cache[row]
            if not out:
                raise CellNotTabulatedError(
                    f"{self.name}: cell {self.keys[row]!r} has no results at fidelity {self.fidelities[f]}"
                )
            return dict(out)
        if not 0 <= seed < self.n_seeds:
            raise ValueError(f"{self.name} has runs 0..{self.n_seeds - 1}, got seed={seed}")
        vals = self.values[row, f, seed]
        out = {m: float(v) for m, v in zip(self.metrics, vals) if v == v}
        if not out:
            raise CellNotTabulatedError(
                f"{self.name}: cell {self.keys[row]!r} has no results at fidelity "
                f"{self.fidelities[f]} for run {seed}"
            )
        return out

    def _rows_as_dicts(self, block: np.ndarray) -> list[dict[str, float]]:
        metrics = self.metrics
        out = []
        for vals in block.tolist():
            out.append({m: v for m, v in zip(metrics, vals) if v == v})
        return out

    def candidates(self) -> list[Arch]:
        """One architecture per tabulated cell, in table order."""
        if self._archs is None:
            self._archs = [self.space.from_string(s) for s in self.strings]
        return list(self._archs)

    def optimum(self, metric: str, fidelity: int | None = None, max_cost: dict[str, float] | None = None) -> float:
        """Best mean value of ``metric`` (max, or min for cost metrics), among the cells within
        ``max_cost`` (e.g. ``{"flops": 2e7}``) when given."""
        col = self._metric_column(metric, fidelity, max_cost)
        return float(np.nanmin(col) if metric in MINIMISED else np.nanmax(col))

    def best_key(self, metric: str, fidelity: int | None = None, max_cost: dict[str, float] | None = None) -> str:
        col = self._metric_column(metric, fidelity, max_cost)
        i = np.nanargmin(col) if metric in MINIMISED else np.nanargmax(col)
        return self.keys[int(i)]

    def _metric_column(self, metric: str, fidelity: int | None, max_cost: dict[str, float] | None = None) -> np.ndarray:
        if metric not in self.metrics:
            raise UnknownNameError("metric", metric, self.metrics)
        f = self._fidelity_index(fidelity)
        col = self._mean[:, f, self.metrics.index(metric)].copy()
        for name, limit in (max_cost or {}).items():
            if name not in self.metrics:
                raise UnknownNameError(f"cost metric of {self.name}", name, self.metrics)
            over = ~(self._mean[:, f, self.metrics.index(name)] <= limit)
            col[over] = np.nan
        if np.isnan(col).all():
            raise ValueError(f"{self.name}: no cell has {metric}" + (f" within {max_cost}" if max_cost else ""))
        return col

    def eval_time(self, arch: Arch, fidelity: int | None = None) -> float:
        """Simulated seconds one evaluation of ``arch`` occupies a worker.

        The recorded ``train_time`` at that fidelity where the table has one; otherwise the
        benchmark's documented cost model (``self.time_model`` / ``self.time_fn``); one
        second when it has neither. Never reads the wall clock.
        """
        res = self.query(arch, fidelity)
        if "train_time" in res:
            return float(res["train_time"])
        return 1.0 if self.time_fn is None else float(self.time_fn(arch, res))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dataset": self.dataset,
            "space": self.space.name,
            "cells": len(self),
            "metrics": self.metrics,
            "fidelities": self.fidelities,
            "runs": self.n_seeds,
            "source": self.source,
            "time_model": self.time_model,
            "partial": self.partial,
        }

    def __repr__(self) -> str:
        return (
            f"TabularBenchmark({self.name!r}, dataset={self.dataset!r}, cells={len(self)}, "
            f"metrics={self.metrics})"
        )

    def __reduce__(self):
        # Pickle compactly: drop caches, keep the data.
        return (_rebuild, (self.describe(), self.keys, self.strings, self.values, self.time_fn, self.space))

    # ------------------------------------------------------------------ arrow / parquet
    def to_arrow(self) -> pa.Table:
        """Long table: one row per (cell, fidelity, run) with every metric as a column.

        ``cell`` numbers the cells; their ``key`` and ``arch`` string are written on each cell's
        first row only (null elsewhere), which keeps million-row tables small and fast to read.
        """
        n, f, s, m = self.values.shape
        cell = np.repeat(np.arange(n, dtype=np.int32), f * s)
        fid = np.tile(np.repeat(np.arange(f), s), n)
        run = np.tile(np.arange(s), n * f)
        flat = self.values.reshape(n * f * s, m)
        keep = ~np.all(np.isnan(flat), axis=1)
        cell, fid, run, flat = cell[keep], fid[keep], run[keep], flat[keep]
        first = np.ones(len(cell), dtype=bool)
        first[1:] = cell[1:] != cell[:-1]
        fids = np.array([-1 if x is None else x for x in self.fidelities], dtype=np.int32)
        keys = np.asarray(self.keys, dtype=object)
        strings = np.asarray(self.strings, dtype=object)
        cols = {
            "cell": pa.array(cell),
            "key": pa.array(np.where(first, keys[cell], None), pa.string()),
            "arch": pa.array(np.where(first, strings[cell], None), pa.string()),
            "fidelity": pa.array(fids[fid]),
            "run": pa.array(run.astype(np.int16)),
        }
        for j, name in enumerate(self.metrics):
            cols[name] = pa.array(flat[:, j])
        meta = {
            "raynas": json.dumps(
                {
                    "format": _FORMAT_VERSION,
                    "name": self.name,
                    "dataset": self.dataset,
                    "space": self.space.name,
                    "space_options": self.space.options,
                    "fidelities": self.fidelities,
                    "runs": s,
                    "time_model": self.time_model,
                }
            )
        }
        return pa.table(cols).replace_schema_metadata(meta)

    def to_parquet(self, path: str | Path) -> Path:
        """Write the table atomically to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        pq.write_table(self.to_arrow(), tmp, compression="zstd")
        tmp.replace(path)
        return path

    @classmethod
    def from_arrow(cls, table: pa.Table, source: str = "", space: Space | None = None) -> TabularBenchmark:
        """Inverse of :meth:`to_arrow`."""
        return cls._from_columns(table.schema, table.column, source, space)

    @classmethod
    def from_parquet(cls, path: str | Path) -> TabularBenchmark:
        """Load a table written by :meth:`to_parquet`, one column at a time (bounded memory)."""
        path = Path(path)
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

        return cls._from_columns(schema, column, str(path), None)

    @classmethod
    def _from_columns(cls, schema: pa.Schema, column, source: str, space: Space | None) -> TabularBenchmark:
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
        return cls(
            meta["name"], space, keys, strings, values, metrics, fidelities,
            dataset=meta.get("dataset"), source=source, time_model=meta.get("time_model"),
        )


def _rebuild(desc, keys, strings, values, time_fn, space):
    return TabularBenchmark(
        desc["name"], space, keys, strings, values, desc["metrics"], desc["fidelities"],
        dataset=desc["dataset"], source=desc["source"], time_model=desc["time_model"],
        time_fn=time_fn,
    )


class _quiet_nan_warnings:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
