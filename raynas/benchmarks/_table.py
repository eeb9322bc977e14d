"""`TabularBenchmark`: a lookup table of measured results over a search space.

Results live in a dense ``float64`` array indexed ``(cell, fidelity, seed, metric)`` (NaN where
not measured), next to the list of canonical cell keys; the same data round-trips through a
long-format ``pyarrow.Table`` (one row per cell, fidelity and seed) for Parquet storage, laid
out and read back by :mod:`raynas.benchmarks._table_layout`.
Queries go by canonical key, so isomorphic encodings of one cell share their row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from raynas._errors import (
    BenchmarkFormatError,
    CellNotTabulatedError,
    InvalidArchitectureError,
    UnknownNameError,
)
from raynas.benchmarks import _table_layout as _layout
from raynas.spaces import Arch, Space

#: Metrics where smaller is better; every other metric is maximised.
MINIMISED = frozenset({"params", "flops", "latency", "train_time", "loss", "val_loss"})
#: Metrics that describe the cell itself (known without training it).
COST_METRICS = ("params", "flops", "latency")


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

    def subset(self, rows: Sequence[int], name: str | None = None) -> TabularBenchmark:
        """A partial table holding only the cells at ``rows`` (e.g. to model a user's partial table).

        Args:
            rows: Row indices into this table, as in ``self.keys``.
            name: Name of the new table (default: this one's).
        """
        idx = [int(r) for r in rows]
        if len(set(idx)) != len(idx) or any(not 0 <= r < len(self) for r in idx):
            raise ValueError(f"rows must be distinct indices in [0, {len(self)}), got {len(idx)} rows")
        return TabularBenchmark(
            name or self.name, self.space, [self.keys[r] for r in idx], [self.strings[r] for r in idx],
            self.values[idx], self.metrics, self.fidelities, dataset=self.dataset,
            source=f"{self.source or 'memory'} ({len(idx)} of its {len(self)} cells)",
            time_model=self.time_model, time_fn=self.time_fn,
        )

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
        The layout is :mod:`raynas.benchmarks._table_layout`'s.
        """
        return _layout.to_arrow(self)

    def to_parquet(self, path: str | Path) -> Path:
        """Write the table atomically to ``path``."""
        return _layout.write_parquet(self.to_arrow(), path)

    @classmethod
    def from_arrow(cls, table: pa.Table, source: str = "", space: Space | None = None) -> TabularBenchmark:
        """Inverse of :meth:`to_arrow`."""
        return cls._from_columns(table.schema, table.column, source, space)

    @classmethod
    def from_parquet(cls, path: str | Path) -> TabularBenchmark:
        """Load a table written by :meth:`to_parquet`, one column at a time (bounded memory)."""
        path = Path(path)
        schema, column = _layout.open_parquet(path)
        return cls._from_columns(schema, column, str(path), None)

    @classmethod
    def _from_columns(cls, schema: pa.Schema, column, source: str, space: Space | None) -> TabularBenchmark:
        return cls(**_layout.from_columns(schema, column, source, space))


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
