"""Searchers on a user's partial table: a random 20,000-cell subset of NAS-Bench-101.

Users bring partial tables (a few thousand to tens of thousands of cells of a large space).
This script builds one the way a user would and times every searcher on it, next to the same
searcher on the full NAS-Bench-201 table (its peer, measured in the same run):

1. every unique NB101 cell is enumerated (``bench_nasbench101.enumerate_cells``, the paper's
   423,624), 20,000 are drawn at random with a fixed seed, and each gets a synthetic
   validation and test accuracy (a fixed random linear function of its op counts, edges and
   depth plus noise, so that there is something to learn); the CSV is written with
   ``raynas data import`` into ``--cache`` and reused on later runs;
2. each searcher runs one 150-query study per seed on that table and on NAS-Bench-201 CIFAR-10
   (``../shared/data``), one simulated worker, one torch thread, exactly as a study of
   ``raynas compare`` runs it (``run_study``: candidates of the partial table included);
3. with ``--compare``, the issue's 5-method x 10-seed ``raynas compare`` on the partial table.

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


def build_table(cache: Path, seed: int = 0) -> Path:
    """The 20,000-cell partial NB101 table as a raynas Parquet file (built once, then reused)."""
    out = cache / f"nb101-partial{CELLS // 1000}k-seed{seed}.parquet"
    if out.is_file():
        return out
    from bench_nasbench101 import enumerate_cells

    from raynas.spaces import get_space

    space = get_space("nasbench101")
    t = time.perf_counter()
    cells, _, _ = enumerate_cells()
    print(f"enumerated {len(cells):,} unique NB101 cells in {time.perf_counter() - t:.0f} s")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(cells), size=CELLS, replace=False)
    feats = np.array([_features(space, cells[i]) for i in pick])
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-9)
    weights = rng.normal(size=feats.shape[1])
    signal = feats @ weights / np.sqrt(len(weights))
    val = 90.0 + 2.0 * signal + rng.normal(scale=0.5, size=CELLS)
    test = val - 0.6 + rng.normal(scale=0.3, size=CELLS)
    cache.mkdir(parents=True, exist_ok=True)
    staged = cache / f"{out.stem}.csv"
    with open(staged, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "val_acc", "test_acc"])
        for i, c in enumerate(pick):
            w.writerow([space.to_string(cells[c]), f"{val[i]:.4f}", f"{test[i]:.4f}"])
    subprocess.run(["raynas", "data", "import", str(staged), "--space", "nasbench101", "--arch-column", "arch",
                    "--metric", "val_accuracy=val_acc", "--metric", "test_accuracy=test_acc",
                    "--dataset", "synthetic", "--out", str(out)], check=True)
    staged.unlink()
    return out


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
    spec = StudySpec(method=method, seed=seed, metric="val_accuracy", mode="max", budget=budget)
    start = time.perf_counter()
    searcher, state = run_study(spec, bench)
    wall = time.perf_counter() - start
    vals = [r.get("val_accuracy") for r in state.rows if r.get("val_accuracy") is not None]
    return {"method": method, "seed": seed, "wall_s": wall, "queries": len(state.rows),
            "best_val": max(vals) if vals else None, "fallbacks": searcher.n_fallbacks}


def _run_isolated(args: tuple[str, str, int, int]) -> dict:
    """``time_study`` in a fresh process, so that no study warms another's caches."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"from bench_partial import time_study; print(json.dumps(time_study({args!r})))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def studies(partial: str, nb201: str | None, methods: list[str], seeds: int) -> dict:
    table = {}
    print(f"{'method':10s} {'partial NB101 (s)':>18s} {'full NB201 (s)':>15s} {'ratio':>6s} {'limit (s)':>9s}")
    for method in methods:
        part = [_run_isolated((partial, method, s, BUDGET)) for s in range(seeds)]
        full = [_run_isolated((nb201, method, s, BUDGET)) for s in range(seeds)] if nb201 else []
        p = float(np.mean([r["wall_s"] for r in part]))
        f = float(np.mean([r["wall_s"] for r in full])) if full else None
        limit = max(2 * f, 30.0) if f is not None else 30.0
        if method in ("dnas", "seminas"):
            limit = min(limit, 60.0)
        table[method] = {"partial_s": p, "nb201_s": f, "ratio": None if f is None else p / f, "limit_s": limit,
                         "meets_target": p <= limit, "partial_runs": part, "nb201_runs": full}
        ratio = "" if f is None else f"{p / f:6.2f}"
        print(f"{method:10s} {p:18.1f} {f if f is not None else float('nan'):15.1f} {ratio:>6s} {limit:9.0f}"
              f"{'' if p <= limit else '  OVER'}", flush=True)
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
    methods = searcher_names() if args.methods == "all" else args.methods.split(",")
    partial = str(build_table(args.cache))
    nb201 = shared("nasbench201/nats_bench.csv")
    data = {"cells": CELLS, "budget": BUDGET, "seeds": args.seeds,
            "studies": studies(partial, None if nb201 is None else str(nb201), methods, args.seeds)}
    if args.compare:
        data["compare"] = compare_run(partial, args.compare_seeds, args.cache / "partial-compare")
    write("partial", data)


if __name__ == "__main__":
    main()
