"""Speed and search quality of DNAS (and its baselines NAO and SemiNAS) on NAS-Bench-201.

Speed (default): one DNAS study of 150 queries on NAS-Bench-201 CIFAR-10, one simulated worker,
training inline on the CPU with one torch thread (a study runs in a one-CPU Ray trial). Target:
at most 60 s on a 2-core machine. NAO and SemiNAS are timed the same way for reference.

Quality (``--quality``): mean best test accuracy after 50 / 100 / 150 queries over several
seeds for dnas, seminas, nao and the registry's baselines (random, evolution, tpe where
installed), via ``simulate`` with one worker, plus DNAS's 2 x 2 ablation (dense sampling x
disentanglement, the paper's Table 3). Regret is to the table's optimum, 94.3733.

Usage:
    python benchmarks/bench_dnas.py                    # speed -> benchmarks/results/dnas.json
    python benchmarks/bench_dnas.py --quality --seeds 20 --ablation-seeds 10 --procs 2
                                                       # -> benchmarks/results/dnas_quality.json
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import shared, write  # noqa: E402

CHECKPOINTS = (50, 100, 150)
ABLATIONS = {
    "dnas": {},
    "dnas_no_dense": {"dense_sampling": False},
    "dnas_no_disentangle": {"disentangle": False},
    "dnas_neither": {"dense_sampling": False, "disentangle": False},
}


def _bench(csv: str):
    from raynas import benchmarks

    return benchmarks.load("nasbench201", path=csv, dataset="cifar10")


def run_study(args: tuple[str, str, int, int, dict]) -> dict:
    """One study; returns its best-so-far curve, wall time and searcher statistics."""
    csv, method, seed, budget, options = args
    import torch

    torch.set_num_threads(1)  # a script may set it; library code never does
    from raynas.runner import simulate
    from raynas.searchers import get_searcher

    bench = _bench(csv)
    start = time.perf_counter()
    searcher = get_searcher(method, bench.space, metric="test_accuracy", mode="max", seed=seed, **options)
    state = simulate(searcher, bench, budget, workers=1)
    wall = time.perf_counter() - start
    best = np.maximum.accumulate([r["test_accuracy"] for r in state.rows]).tolist()
    return {
        "method": method, "seed": seed, "options": options, "wall_s": wall, "best": best,
        "rounds": getattr(searcher, "rounds", None), "fallbacks": searcher.n_fallbacks,
        "validity_rate": getattr(searcher, "validity_rate", None),
    }


def speed(csv: str, budget: int, seed: int) -> dict:
    out = {}
    for method in ("dnas", "seminas", "nao"):
        r = run_study((csv, method, seed, budget, {}))
        out[method] = {k: r[k] for k in ("wall_s", "rounds", "fallbacks", "validity_rate")}
        out[method]["best"] = r["best"][-1]
        print(f"{method:8s} {budget} queries: {r['wall_s']:6.1f} s  best {r['best'][-1]:.3f}  "
              f"rounds {r['rounds']}  validity {r['validity_rate']}")
    out["dnas"]["target_s"] = 60.0
    out["dnas"]["meets_target"] = out["dnas"]["wall_s"] <= 60.0
    return out


def quality(csv: str, seeds: int, procs: int, methods: list[str], ablation_seeds: int) -> dict:
    from raynas.searchers import searcher_names

    optimum = _bench(csv).optimum("test_accuracy")
    runs = {m: (m, {}, seeds) for m in methods if m in searcher_names()}
    if ablation_seeds:
        runs.update({n: ("dnas", o, ablation_seeds) for n, o in ABLATIONS.items() if n not in runs})
    jobs = [(csv, method, seed, max(CHECKPOINTS), opts) for method, opts, n in runs.values() for seed in range(n)]
    results: dict[str, list[dict]] = {name: [] for name in runs}
    names = [name for name, (_, _, n) in runs.items() for _ in range(n)]
    with ProcessPoolExecutor(procs) as pool:
        for name, r in zip(names, pool.map(run_study, jobs)):
            results[name].append(r)
            print(f"{name:20s} seed {r['seed']:2d}: " + "  ".join(
                f"{q}: {r['best'][q - 1]:.3f}" for q in CHECKPOINTS) + f"  ({r['wall_s']:.0f} s)", flush=True)
    table = {}
    for name, rs in results.items():
        best = np.array([[r["best"][q - 1] for q in CHECKPOINTS] for r in rs])  # (seeds, 3)
        table[name] = {
            "options": runs[name][1],
            "method": runs[name][0],
            "seeds": len(rs),
            "mean": dict(zip(map(str, CHECKPOINTS), best.mean(0).round(4).tolist())),
            "regret": dict(zip(map(str, CHECKPOINTS), (optimum - best.mean(0)).round(4).tolist())),
            "stderr": dict(zip(map(str, CHECKPOINTS), (best.std(0) / np.sqrt(len(best))).round(4).tolist())),
            "found_optimum": dict(zip(map(str, CHECKPOINTS), (best >= optimum - 1e-9).mean(0).round(3).tolist())),
            "mean_wall_s": float(np.mean([r["wall_s"] for r in rs])),
        }
    print(f"\nmean best test accuracy (regret to {optimum:.4f}); seeds 0..n-1 per row")
    print(f"{'method':20s} " + " ".join(f"{q:>17d}" for q in CHECKPOINTS) + "   s/study")
    for name, t in table.items():
        cells = " ".join(f"{t['mean'][str(q)]:8.3f} ({t['regret'][str(q)]:.3f})" for q in CHECKPOINTS)
        print(f"{name:20s} {cells}   {t['mean_wall_s']:.0f}  (n={t['seeds']})")
    return {"optimum": optimum, "seeds": seeds, "checkpoints": list(CHECKPOINTS), "table": table}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quality", action="store_true", help="run the multi-seed quality study")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--methods", default="dnas,seminas,nao,random,evolution,tpe")
    ap.add_argument("--ablation-seeds", type=int, default=None,
                    help="seeds of the 2 x 2 ablation (default: --seeds; 0 skips it)")
    ap.add_argument("--budget", type=int, default=150, help="queries of the speed study")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    csv = shared("nasbench201/nats_bench.csv")
    if csv is None:
        return
    if args.quality:
        ablation = args.seeds if args.ablation_seeds is None else args.ablation_seeds
        data = quality(str(csv), args.seeds, args.procs, args.methods.split(","), ablation)
        write("dnas_quality", data)
    else:
        write("dnas", {"budget": args.budget, "seed": args.seed, "studies": speed(str(csv), args.budget, args.seed)})


if __name__ == "__main__":
    main()
