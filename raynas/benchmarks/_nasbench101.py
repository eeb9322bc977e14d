"""NAS-Bench-101 from the official TFRecord files (``nasbench_only108.tfrecord``,
``nasbench_full.tfrecord``) or files in their format, read without TensorFlow.

Each record is a JSON list ``[hash, epochs, adjacency, ops, metrics]``: the module hash, the
epoch budget (4, 12, 36 or 108), the adjacency matrix as a row-major string of ``0``/``1``, the
ops comma-separated, and a base64 ``ModelMetrics`` protobuf whose ``evaluation_data[2]`` holds
the final evaluation. Every budget of a cell was trained up to 3 times; the table keeps each
run on its own seed index, in file order.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from array import array
from pathlib import Path
from typing import Any

import numpy as np

from raynas._errors import BenchmarkFormatError, InvalidArchitectureError
from raynas.benchmarks._registry import user_data_dir
from raynas.benchmarks._table import TabularBenchmark
from raynas.benchmarks._tfrecord import iter_fields, iter_records
from raynas.spaces._nasbench101 import Cell101, NASBench101Space

FIDELITIES = (4, 12, 36, 108)
N_RUNS = 3
METRICS = ("val_accuracy", "test_accuracy", "train_accuracy", "params", "train_time")
TIME_MODEL = (
    "recorded train_time: seconds of training (TPU v2) up to the final evaluation of the budget"
)
#: The table records training time, so no cost model is needed.
TIME_FN = None
_FID = {e: i for i, e in enumerate(FIDELITIES)}
_NAN = float("nan")
_d = struct.Struct("<d").unpack


def load_nasbench101(path: Path, dataset: str = "cifar10", **options: Any) -> TabularBenchmark:
    """Load NAS-Bench-101 from an official-format TFRecord file (or ``nb101_1k.json``-style JSON).

    Args:
        path: The ``.tfrecord`` file.
        dataset: Only ``"cifar10"``.
        **options: ``check_crc`` (default True) verifies every record's CRC32C.

    Returns:
        A table over fidelities (4, 12, 36, 108) x 3 runs with the metrics ``val_accuracy``,
        ``test_accuracy``, ``train_accuracy`` (percent), ``params`` and ``train_time``
        (seconds, final evaluation); NaN where a budget or run is absent.

    Raises:
        BenchmarkFormatError: corrupt framing or CRC, a malformed record, or a record whose
            hash is not the module hash of its graph; the message names the byte offset.
    """
    path = Path(path)
    check_crc = bool(options.pop("check_crc", True))
    if options:
        raise TypeError(
            f"load_nasbench101 got unknown option(s) {sorted(options)}; known: check_crc"
        )
    if dataset != "cifar10":
        raise BenchmarkFormatError(f"NAS-Bench-101 has results for cifar10 only, not {dataset!r}")
    if path.suffix == ".json":
        return load_nb101_json(path)
    space = NASBench101Space()
    rows: dict[str, int] = {}
    specs: list[tuple[str, str]] = []
    strings: list[str] = []
    rec_row = array("q")  # per record: row, fidelity index and METRICS (compact buffers)
    rec_fid = array("b")
    rec_vals = array("d")
    for offset, data in iter_records(path, check_crc=check_crc):
        try:
            hash_, epochs, adj, ops, metrics = json.loads(data)
            if not (isinstance(hash_, str) and isinstance(adj, str) and isinstance(ops, str)):
                raise TypeError("hash, adjacency and ops must be strings")
            fid = _FID[epochs]
            vals = _final_metrics(base64.b64decode(metrics))
        except (ValueError, TypeError, KeyError, IndexError, binascii.Error, struct.error) as exc:
            raise BenchmarkFormatError(
                f"{path}: malformed record at byte offset {offset}: expected a JSON list [hash, "
                f"epochs in {FIDELITIES}, adjacency, ops, base64 ModelMetrics] ({exc})"
            ) from None
        row = rows.get(hash_)
        if row is None or specs[row] != (adj, ops):
            cell = _decode_cell(path, offset, adj, ops)
            key = space.key(cell)
            if key != hash_:
                raise BenchmarkFormatError(
                    f"{path}: record at byte offset {offset} has hash {hash_!r}, but the module "
                    f"hash of its graph is {key!r}; the file is corrupt or not NAS-Bench-101"
                )
            if row is None:
                row = rows[hash_] = len(specs)
                specs.append((adj, ops))
                strings.append(space.to_string(cell))
        rec_row.append(row)
        rec_fid.append(fid)
        rec_vals.extend(vals)
    if not rows:
        raise BenchmarkFormatError(f"{path}: no records; expected a NAS-Bench-101 TFRecord file")
    keys = list(rows)
    values = _dense(
        path,
        keys,
        np.frombuffer(rec_row, dtype=np.int64),
        np.frombuffer(rec_fid, dtype=np.int8).astype(np.int64),
        np.frombuffer(rec_vals, dtype=np.float64).reshape(-1, len(METRICS)),
    )
    return TabularBenchmark(
        "nasbench101",
        space,
        keys,
        strings,
        values,
        METRICS,
        FIDELITIES,
        dataset=dataset,
        source=str(path),
        time_model=TIME_MODEL,
        time_fn=TIME_FN,
    )


def _decode_cell(path: Path, offset: int, adj: str, ops: str) -> Cell101:
    op_list = ops.split(",")
    n = len(op_list)
    if len(adj) != n * n or set(adj) - {"0", "1"}:
        raise BenchmarkFormatError(
            f"{path}: record at byte offset {offset}: adjacency {adj!r} is not a {n}x{n} "
            f"row-major string of 0/1 for the ops {ops!r}"
        )
    matrix = [[int(adj[i * n + j]) for j in range(n)] for i in range(n)]
    try:
        return NASBench101Space().from_spec(matrix, op_list)
    except InvalidArchitectureError as exc:
        raise BenchmarkFormatError(f"{path}: record at byte offset {offset}: {exc}") from None


def _final_metrics(data: bytes) -> tuple[float, ...]:
    """``METRICS`` of a ``ModelMetrics`` message: its ``evaluation_data[2]`` and parameters."""
    evals = []
    params = _NAN
    for num, wire, value in iter_fields(data):
        if num == 1 and wire == 2:
            evals.append(value)
        elif num == 2 and wire == 0:
            params = float(value)  # type: ignore[arg-type]
    if len(evals) < 3:
        raise ValueError(
            f"ModelMetrics has {len(evals)} evaluations, expected 3 (start, halfway, final)"
        )
    found = {}
    for num, wire, value in iter_fields(evals[2]):  # type: ignore[arg-type]
        if wire == 1 and 2 <= num <= 5:
            found[num] = _d(value)[0]  # type: ignore[arg-type]
    acc = [found.get(k, _NAN) * 100.0 for k in (4, 5, 3)]
    return (*acc, params, found.get(2, _NAN))


def _dense(
    path: Path, keys: list[str], row: np.ndarray, fid: np.ndarray, vals: np.ndarray
) -> np.ndarray:
    """Scatter per-record metrics into ``(cells, fidelities, runs, metrics)``; run = file order."""
    values = np.full((len(keys), len(FIDELITIES), N_RUNS, len(METRICS)), np.nan)
    if len(row) == 0:
        return values
    group = row * len(FIDELITIES) + fid
    order = np.argsort(group, kind="stable")
    g = group[order]
    first = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    counts = np.diff(np.r_[first, len(g)])
    run = np.empty(len(g), dtype=np.int64)
    run[order] = np.arange(len(g)) - np.repeat(first, counts)
    if run.max() >= N_RUNS:
        i = int(np.argmax(run))
        raise BenchmarkFormatError(
            f"{path}: cell {keys[row[i]]} has more than {N_RUNS} runs at {FIDELITIES[fid[i]]} epochs"
        )
    values[row, fid, run] = vals
    return values


def load_nb101_json(path: str | Path) -> TabularBenchmark:
    """Load a JSON excerpt such as ``nb101_1k.json`` (one run per cell).

    Expects ``{"records": [{"hash", "matrix", "ops", "trainable_parameters",
    "training_time_108", "validation_accuracy": {"4": .., "12": .., "36": .., "108": ..}}]}``
    with accuracies in [0, 1]. The table has metrics ``val_accuracy`` (percent), ``params``
    and ``train_time`` (at 108 epochs only).
    """
    path = Path(path)
    try:
        with open(path) as fh:
            records = json.load(fh)["records"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise BenchmarkFormatError(
            f"{path}: not a NAS-Bench-101 JSON excerpt with 'records' ({exc})"
        ) from None
    space = NASBench101Space()
    keys, strings = [], []
    values = np.full((len(records), len(FIDELITIES), 1, 3), np.nan)
    for i, rec in enumerate(records):
        try:
            cell = space.from_spec(rec["matrix"], rec["ops"])
            for e, acc in rec["validation_accuracy"].items():
                values[i, _FID[int(e)], 0, 0] = 100.0 * float(acc)
            values[i, :, 0, 1] = float(rec["trainable_parameters"])
            values[i, _FID[108], 0, 2] = float(rec.get("training_time_108", math.nan))
        except (InvalidArchitectureError, KeyError, TypeError, ValueError) as exc:
            raise BenchmarkFormatError(f"{path}: bad record {i}: {exc}") from None
        key = space.key(cell)
        if key != rec.get("hash", key):
            raise BenchmarkFormatError(
                f"{path}: record {i} has hash {rec['hash']!r} but its graph hashes to {key!r}"
            )
        keys.append(key)
        strings.append(space.to_string(cell))
    return TabularBenchmark(
        "nasbench101",
        space,
        keys,
        strings,
        values,
        ["val_accuracy", "params", "train_time"],
        FIDELITIES,
        dataset="cifar10",
        source=str(path),
        time_model=TIME_MODEL,
        time_fn=TIME_FN,
    )


def convert_nasbench101(src: str | Path, dst: str | Path | None = None) -> Path:
    """Convert an official NAS-Bench-101 file to raynas Parquet (fast to load).

    Args:
        src: ``nasbench_only108.tfrecord``, ``nasbench_full.tfrecord`` or a file in their format.
        dst: Output path; defaults to ``user_data_dir() / "nasbench101.parquet"``.

    Returns:
        The written path.
    """
    dst = Path(dst) if dst is not None else user_data_dir() / "nasbench101.parquet"
    return load_nasbench101(Path(src), "cifar10").to_parquet(dst)
