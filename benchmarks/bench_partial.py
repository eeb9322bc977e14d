"""Searchers on a user's partial table: a random 20,000-cell subset of NAS-Bench-101.

Users bring partial tables (a few thousand to tens of thousands of cells of a large space).
This script builds one the way a user would and times every searcher on it, next to two peers
measured in the same run:

1. every unique NB101 cell is enumerated (``bench_nasbench101.enumerate_cells``, the paper's
   423,624) and gets a synthetic validation and test accuracy (a fixed random linear function
   of its op counts, edges, depth and size, plus noise, so that there is something to learn):
   the full-size table; 20,000 of its cells, drawn with a fixed seed, are written as a CSV and
   imported with ``raynas data import``: the partial table. Both go to ``--cache``, reused;
2. each searcher runs one 150-query study per seed on the partial table, on the full NB101
   table (peer: what the partial table costs beyond the space itself) and on NAS-Bench-201
   CIFAR-10 (``../shared/data``; peer of the targets), one simulated worker, one torch thread,
   each study in a fresh process, exactly as ``raynas compare`` runs a study (``run_study``,
   with the partial table's candidates);
3. with ``--compare``, the 5-method x 10-seed ``raynas compare`` on the partial table.

Targets: each searcher's study on the partial table at most max(2 x its NB201 time, 30 s);
DNAS and SemiNAS at most 60 s each; the compare under 10 minutes on 2 cores.

Usage:
    python benchmarks/bench_partial.py [--methods all] [--seeds 1] [--compare]
                                       # -> benchmarks/results/partial.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import shared, write  # noqa: E402

CELLS = 20_000
BUDGET = 150
COMPARE_METHODS = ("dnas", "seminas", "tpe", "evolution", "random")


def _features(space, cell) -> np.ndarray:
    adj, ops = space.to_graph(cell)  # (V, V), (V, n_ops)
    v = len(adj)
    depth = np.zeros(v)
    for j in range(v):  # longest path from the input, in topological order
        preds = np.nonzero(adj[:, j])[0]
        depth[j] = 1 + depth[preds].max() if len(preds) else 0
    return np.concatenate([ops.sum(axis=0), [adj.sum(), depth[-1], v]])


def build_tables(cache: Path, seed: int = 0) -> tuple[Path, Path]:
    """The full synthetic NB101 table and its 20,000-cell subset, as raynas Parquet files.

    Built once, then reused. The full table is written directly; the subset is written as a
    user would: a CSV of architecture strings and metrics through ``raynas data import``.
    """
    full_path = cache / f"nb101-full-synthetic-seed{seed}.parquet"
    part_path = cache / f"nb101-partial{CELLS // 1000}k-seed{seed}.parquet"
    if full_path.is_file() and part_path.is_file():
        return full_path, part_path
    from bench_nasbench101 import enumerate_cells

    from raynas.benchmarks import TabularBenchmark
    from raynas.spaces import get_space

    space = get_space("nasbench101")
    t = time.perf_counter()
    cells, keys, _ = enumerate_cells()
    print(f"enumerated {len(cells):,} unique NB101 cells in {time.perf_counter() - t:.0f} s", flush=True)
    rng = np.random.default_rng(seed)
    feats = np.array([_features(space, c) for c in cells])
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-9)
    weights = rng.normal(size=feats.shape[1])
    val = 90.0 + 2.0 * (feats @ weights) / np.sqrt(len(weights)) + rng.normal(scale=0.5, size=len(cells))
    test = val - 0.6 + rng.normal(scale=0.3, size=len(cells))
    strings = [space.to_string(c) for c in cells]
    values = np.stack([val, test], axis=-1)[:, None, None, :]  # (N, fidelity, run, metric)
    cache.mkdir(parents=True, exist_ok=True)
    TabularBenchmark("custom", space, keys, strings, values, ["val_accuracy", "test_accuracy"],
                     dataset="synthetic", source="bench_partial.py (synthetic metrics)").to_parquet(full_path)
    pick = rng.choice(len(cells), size=CELLS, replace=False)
    staged = cache / f"{part_path.stem}.csv"
    with open(staged, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "val_acc", "test_acc"])
        for i in pick:
            w.writerow([strings[i], f"{val[i]:.4f}", f"{test[i]:.4f}"])
    subprocess.run(["raynas", "data", "import", str(staged), "--space", "nasbench101", "--arch-column", "arch",
                    "--metric", "val_accuracy=val_acc", "--metric", "test_accuracy=test_acc",
                    "--dataset", "synthetic", "--out", str(part_path)], check=True)
    staged.unlink()
    return full_path, part_path


def _load(data: str):
    from raynas import benchmarks

    if data.endswith(".parquet"):
        return benchmarks.load("custom", path=data)
    return benchmarks.load("nasbench201", path=data, dataset="cifar10")


def time_study(args: tuple[str, str, int, int]) -> dict:
    """One study as ``raynas compare`` runs it; wall seconds and searcher statistics."""
    data, method, seed, budget = args
    import torch

    torch.set_num_threads(1)  # a study runs in a one-CPU trial
    from raynas.runner._study import StudySpec, run_study

    bench = _load(data)
    metric = "val_accuracy" if "val_accuracy" in bench.metrics else "test_accuracy"  # NB201 CSV: test only
    spec = StudySpec(method=method, seed=seed, metric=metric, mode="max", budget=budget)
    start = time.perf_counter()
    searcher, state = run_study(spec, bench)
    wall = time.perf_counter() - start
    vals = [r[metric] for r in state.rows if r.get(metric) is not None]
    return {"method": method, "seed": seed, "wall_s": wall, "queries": len(state.rows),
            "best": max(vals) if vals else None, "fallbacks": searcher.n_fallbacks,
            "rounds": getattr(searcher, "rounds", None)}


def _run_isolated(args: tuple[str, str, int, int]) -> dict:
    """``time_study`` in a fresh process, so that no study warms another's caches."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"from bench_partial import time_study; print(json.dumps(time_study({args!r})))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def studies(tables: dict[str, str], methods: list[str], seeds: int) -> dict:
    """Each searcher on each table, one fresh process per study; mean wall seconds per table."""
    table = {}
    names = list(tables)
    print(f"{'method':10s} " + " ".join(f"{n:>14s}" for n in names) + "  partial/full101  partial/nb201  limit (s)")
    for method in methods:
        runs = {n: [_run_isolated((path, method, s, BUDGET)) for s in range(seeds)] for n, path in tables.items()}
        wall = {n: float(np.mean([r["wall_s"] for r in rs])) for n, rs in runs.items()}
        p, f101, f201 = wall.get("partial-nb101"), wall.get("full-nb101"), wall.get("full-nb201")
        limit = max(2 * f201, 30.0) if f201 is not None else 30.0
        if method in ("dnas", "seminas"):
            limit = min(limit, 60.0)
        table[method] = {"wall_s": wall, "limit_s": limit, "meets_target": p <= limit,
                         "partial_over_full_nb101": None if f101 is None else p / f101,
                         "partial_over_nb201": None if f201 is None else p / f201, "runs": runs}
        r101 = "" if f101 is None else f"{p / f101:15.2f}"
        r201 = "" if f201 is None else f"{p / f201:14.2f}"
        print(f"{method:10s} " + " ".join(f"{wall[n]:14.1f}" for n in names) + f"  {r101:>15s}  {r201:>13s}"
              f"  {limit:9.0f}{'' if p <= limit else '  OVER'}", flush=True)
    return table


def compare_run(partial: str, seeds: int, out: Path) -> dict:
    """The issue's 5-method x 10-seed compare on the partial table, through the CLI."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1")
    cmd = ["raynas", "compare", "--methods", ",".join(COMPARE_METHODS), "--benchmark", "custom", "--data", partial,
           "--metric", "val_accuracy", "--seeds", str(seeds), "--budget", str(BUDGET), "--out", str(out), "--quiet"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - start
    print(f"compare {len(COMPARE_METHODS)} methods x {seeds} seeds x {BUDGET} queries: {wall:.0f} s")
    return {"methods": list(COMPARE_METHODS), "seeds": seeds, "budget": BUDGET, "wall_s": wall,
            "target_s": 600.0, "meets_target": wall <= 600.0}


def main() -> None:
    from raynas.searchers import searcher_names

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default="all", help="comma-separated searchers, or 'all'")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per searcher and table")
    ap.add_argument("--compare", action="store_true", help="also run the 5-method x 10-seed compare")
    ap.add_argument("--compare-seeds", type=int, default=10)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "raynas" / "bench")
    args = ap.parse_args()
    methods = searcher_names() if args.methods == "all" else [m for m in args.methods.split(",") if m]
    full, partial = build_tables(args.cache)
    tables = {"partial-nb101": str(partial), "full-nb101": str(full)}
    nb201 = shared("nasbench201/nats_bench.csv")
    if nb201 is not None:
        tables["full-nb201"] = str(nb201)
    data = {"cells": CELLS, "budget": BUDGET, "seeds": args.seeds, "tables": tables,
            "studies": studies(tables, methods, args.seeds) if methods else {}}
    write("partial", data)  # the studies' figures are kept whatever happens to the compare
    if args.compare:
        data["compare"] = compare_run(str(partial), args.compare_seeds, args.cache / "partial-compare")
        write("partial", data)


if __name__ == "__main__":
    main()
