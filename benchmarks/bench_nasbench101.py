"""Speed of the NAS-Bench-101 space and benchmark: hashing, queries, loading.

Measures, on one core:

- hashing: distinct cells per second through ``space.key`` (caches cleared; target >= 5,000);
- queries: distinct cells (hashing included; target >= 5,000/s) and repeated cells
  (target >= 100,000/s) on a full-size table;
- loading: the two EC-NAS TFRecord fixtures;
- full size: a synthetic table of every one of the 423,624 unique cells x 4 budgets x 3 runs
  (the official layout, random metrics) written as Parquet, then ``TabularBenchmark.from_parquet``
  timed in a fresh process with its peak RSS (targets < 5 s and < 1.5 GB).

The unique cells are enumerated, not sampled (random sampling never reaches all of them):
every connected DAG of V <= 7 vertices and <= 9 edges in topological order, deduplicated up to
relabelling of interior vertices by a canonical adjacency code, times every op labelling,
deduplicated by the official module hash. The count must come out as the paper's 423,624.

Usage:
    python benchmarks/bench_nasbench101.py [--out benchmarks/results/nasbench101.json]
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from raynas import benchmarks
from raynas.benchmarks._nasbench101 import FIDELITIES, METRICS, TIME_MODEL
from raynas.benchmarks._table import TabularBenchmark
from raynas.benchmarks._tfrecord import masked_crc32c, masked_crc32c_batch
from raynas.spaces import _nb101_cell as nb
from raynas.spaces._nasbench101 import Cell101, NASBench101Space

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RAYNAS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _graphs(v: int) -> np.ndarray:
    """One ``(v, v)`` upper-triangular matrix per isomorphism class of valid pruned DAGs."""
    pairs = [(i, j) for i in range(v) for j in range(i + 1, v)]
    codes = np.arange(1 << len(pairs), dtype=np.int64)
    bits = ((codes[:, None] >> np.arange(len(pairs))) & 1).astype(np.uint8)  # (N, E)
    bits = bits[bits.sum(axis=1) <= nb.MAX_EDGES]
    mats = np.zeros((len(bits), v, v), dtype=np.uint8)
    for k, (i, j) in enumerate(pairs):
        mats[:, i, j] = bits[:, k]
    fwd = np.zeros((len(mats), v), dtype=bool)  # reachable from the input
    fwd[:, 0] = True
    for j in range(1, v):
        fwd[:, j] = (fwd[:, :j] & mats[:, :j, j].astype(bool)).any(axis=1)
    bwd = np.zeros_like(fwd)  # reaches the output
    bwd[:, v - 1] = True
    for i in range(v - 2, -1, -1):
        bwd[:, i] = (mats[:, i, i + 1 :].astype(bool) & bwd[:, i + 1 :]).any(axis=1)
    mats = mats[(fwd & bwd).all(axis=1)]
    weights = (np.int64(1) << np.arange(v * v, dtype=np.int64)).reshape(v, v)
    canon = None
    for perm in itertools.permutations(range(1, v - 1)):
        order = [0, *perm, v - 1]
        code = (mats[:, order][:, :, order].astype(np.int64) * weights).sum(axis=(1, 2))
        canon = code if canon is None else np.minimum(canon, code)
    _, first = np.unique(canon, return_index=True)
    return mats[np.sort(first)]


def enumerate_cells() -> tuple[list[Cell101], list[str], float]:
    """All unique cells with their keys, and the seconds spent hashing."""
    cells, keys, seen = [], [], set()
    hash_s = 0.0
    for v in range(2, nb.MAX_VERTICES + 1):
        for mat in _graphs(v):
            matrix = tuple(tuple(int(x) for x in row) for row in mat)
            for labels in itertools.product(nb.OPS, repeat=v - 2):
                ops = (nb.INPUT, *labels, nb.OUTPUT)
                t = time.perf_counter()
                key = nb.module_hash(matrix, ops)
                hash_s += time.perf_counter() - t
                if key not in seen:
                    seen.add(key)
                    cells.append(Cell101(matrix, ops))
                    keys.append(key)
    return cells, keys, hash_s


def bench_hash(space: NASBench101Space, cells: list[Cell101], n: int) -> float:
    nb._clear_caches()
    sample = [Cell101(c.matrix, c.ops) for c in cells[:n]]
    t = time.perf_counter()
    for c in sample:
        space.key(c)
    return n / (time.perf_counter() - t)


def bench_queries(bench: TabularBenchmark, cells: list[Cell101], n: int) -> tuple[float, float]:
    nb._clear_caches()
    bench._arch_rows.clear()
    bench.query(cells[-1])  # build the per-fidelity mean cache outside the timing
    fresh = [Cell101(c.matrix, c.ops) for c in cells[:n]]
    t = time.perf_counter()
    for c in fresh:
        bench.query(c)
    distinct = n / (time.perf_counter() - t)
    hot = fresh[:1000]
    reps = max(1, (20 * n) // len(hot))
    t = time.perf_counter()
    for _ in range(reps):
        for c in hot:
            bench.query(c)
    repeated = reps * len(hot) / (time.perf_counter() - t)
    return distinct, repeated


def bench_fixtures() -> dict[str, float]:
    out = {}
    for name in ("energy_4V9E.tfrecord", "energy_5V9E.tfrecord"):
        path = SHARED / "nasbench101" / name
        if not path.is_file():
            continue
        times = []
        for _ in range(3):
            nb._clear_caches()
            t = time.perf_counter()
            benchmarks.load("nasbench101", path=path)
            times.append(time.perf_counter() - t)
        out[name] = min(times)
    return out


# Runs in a fresh process. Peak RSS is VmHWM from /proc (ru_maxrss of a child carries the
# parent's peak across fork/exec on Linux), falling back to getrusage elsewhere.
_LOAD_SNIPPET = """
import json, resource, sys, time

def peak_mb():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

from raynas.benchmarks import load
from raynas.benchmarks._table import TabularBenchmark
from raynas.benchmarks._nasbench101 import load_nasbench101
base = peak_mb()
t = time.perf_counter()
if sys.argv[1].endswith(".parquet"):
    bench = TabularBenchmark.from_parquet(sys.argv[1])
else:
    bench = load_nasbench101(sys.argv[1], "cifar10")
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "peak_rss_mb": peak_mb(), "rss_before_load_mb": base,
                  "cells": len(bench), "shape": list(bench.values.shape)}))
"""


def _measure_load(path: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_SNIPPET, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_full(space: NASBench101Space, cells: list[Cell101], keys: list[str], seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    n = len(cells)
    values = np.empty((n, len(FIDELITIES), 3, len(METRICS)))
    values[..., :3] = rng.uniform(10.0, 95.0, size=(n, len(FIDELITIES), 3, 3))
    values[..., 3] = rng.integers(200_000, 50_000_000, size=n)[:, None, None]
    values[..., 4] = rng.uniform(100.0, 5000.0, size=(n, len(FIDELITIES), 3))
    strings = [space.to_string(c) for c in cells]
    bench = TabularBenchmark(
        "nasbench101", space, keys, strings, values, METRICS, FIDELITIES,
        dataset="cifar10", source="synthetic", time_model=TIME_MODEL,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nasbench101.parquet"
        t = time.perf_counter()
        bench.to_parquet(path)
        write_s = time.perf_counter() - t
        size_mb = path.stat().st_size / 2**20
        load = _measure_load(path)
    load.update({"write_seconds": write_s, "parquet_mb": size_mb})
    return bench, load


def _model_metrics(rng: np.random.Generator, params: int) -> bytes:
    """A ``ModelMetrics`` protobuf with evaluations at 0, halfway and 108 epochs."""
    msg = b""
    for epoch in (0.0, 54.0, 108.0):
        ev = b"".join(
            bytes([(k << 3) | 1]) + struct.pack("<d", x)
            for k, x in zip(
                range(1, 6),
                (epoch, epoch * 30.0, *rng.uniform(0.1, 1.0, 3)),
                strict=True,
            )
        )
        msg += b"\x0a" + bytes([len(ev)]) + ev
    return msg + b"\x10" + _varint(params) + b"\x19" + struct.pack("<d", 3300.0)


def _varint(x: int) -> bytes:
    out = bytearray()
    while True:
        b, x = x & 0x7F, x >> 7
        out.append(b | (0x80 if x else 0))
        if not x:
            return bytes(out)


def write_only108(path: Path, cells: list[Cell101], keys: list[str], seed: int) -> None:
    """An official-layout ``nasbench_only108.tfrecord``: every cell x 108 epochs x 3 runs."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        for lo in range(0, len(cells), 20_000):
            datas = []
            for cell, key in zip(cells[lo : lo + 20_000], keys[lo : lo + 20_000], strict=True):
                adj = "".join(str(x) for row in cell.matrix for x in row)
                params = int(rng.integers(200_000, 50_000_000))
                for _ in range(3):
                    b64 = base64.b64encode(_model_metrics(rng, params)).decode()
                    datas.append(json.dumps([key, 108, adj, ",".join(cell.ops), b64]).encode())
            buf = b"".join(datas)
            starts = np.cumsum([0] + [len(d) for d in datas[:-1]]).tolist()
            crcs = masked_crc32c_batch(buf, starts, [len(d) for d in datas])
            for data, crc in zip(datas, crcs.tolist(), strict=True):
                head = struct.pack("<Q", len(data))
                fh.write(
                    head + struct.pack("<I", masked_crc32c(head)) + data + struct.pack("<I", crc)
                )


def bench_tfrecord(cells: list[Cell101], keys: list[str], seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nasbench_only108.tfrecord"
        write_only108(path, cells, keys, seed)
        size_mb = path.stat().st_size / 2**20
        load = _measure_load(path)
    load["tfrecord_mb"] = size_mb
    return load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "nasbench101.json"
    )
    parser.add_argument("--n", type=int, default=20_000, help="distinct cells per speed test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tfrecord",
        action="store_true",
        help="also write and load a full-size official-layout nasbench_only108.tfrecord (minutes)",
    )
    args = parser.parse_args()
    space = NASBench101Space()
    res: dict = {}

    t = time.perf_counter()
    cells, keys, hash_s = enumerate_cells()
    res["enumerate_seconds"] = time.perf_counter() - t
    res["unique_cells"] = len(cells)
    print(f"enumerated {len(cells):,} unique cells in {res['enumerate_seconds']:.1f} s "
          f"(paper: 423,624)")  # fmt: skip
    order = np.random.default_rng(args.seed).permutation(len(cells))
    shuffled = [cells[i] for i in order]

    res["hash_per_s"] = bench_hash(space, shuffled, args.n)
    print(f"hashing: {res['hash_per_s']:,.0f} distinct cells/s (target >= 5,000)")
    res["fixture_load_seconds"] = bench_fixtures()
    for name, sec in res["fixture_load_seconds"].items():
        print(f"load {name}: {sec * 1000:.0f} ms")

    bench, load = bench_full(space, cells, keys, args.seed)
    res["full_load"] = load
    print(f"full table ({load['cells']:,} cells x 4 x 3, {load['parquet_mb']:.1f} MB parquet): "
          f"from_parquet {load['seconds']:.2f} s (target < 5), peak RSS {load['peak_rss_mb']:.0f} MB "
          f"(target < 1536; {load['rss_before_load_mb']:.0f} MB before loading)")  # fmt: skip
    distinct, repeated = bench_queries(bench, shuffled, args.n)
    res["query_distinct_per_s"], res["query_repeated_per_s"] = distinct, repeated
    print(f"queries: {distinct:,.0f} distinct cells/s (target >= 5,000), "
          f"{repeated:,.0f} repeated cells/s (target >= 100,000)")  # fmt: skip

    if args.tfrecord:
        del bench
        load = bench_tfrecord(cells, keys, args.seed)
        res["full_tfrecord_load"] = load
        print(f"official-layout only108 tfrecord ({load['tfrecord_mb']:.0f} MB, {load['cells']:,} "
              f"cells x 3 runs): load_nasbench101 {load['seconds']:.1f} s, peak RSS "
              f"{load['peak_rss_mb']:.0f} MB")  # fmt: skip

    res["python"] = sys.version.split()[0]
    res["cpu_count"] = os.cpu_count()
    res["load_average_1_5_15_min_at_end"] = list(os.getloadavg())  # other work on the machine
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
