"""arch2vec: pretraining time and quality (the paper's Table 1), BO round time, study time.

Default run, each figure next to a peer measured in the same run:

* pretraining on the whole of NAS-Bench-201 (6,466 cells up to isomorphism, default options:
  10 epochs, 10% held out) on one torch thread and on two, into a fresh cache folder; the
  peer is the wall time of a 150-query evolution study;
* Table 1 (reconstruction accuracy, validity, uniqueness, in %) for NAS-Bench-201 (from that
  pretraining) and NAS-Bench-101 (the default option set, 50,000 sampled cells, read from the
  user's cache or pretrained), next to the paper's values;
* the wall time of each arch2vec-bo round (DNGO fit + EI over the unseen pool) and of whole
  150-query studies on NAS-Bench-201 CIFAR-10 once the embeddings are cached (target: at most
  60 s), for arch2vec-bo, arch2vec-rl, evolution and random, with the same seeds.

``--quality``: mean best test accuracy after 50 / 100 / 150 queries on NAS-Bench-201 CIFAR-10
over ``--seeds`` seeds, via ``simulate`` with one worker (the searchers and the table of
``raynas compare``, without Ray), for arch2vec-bo, arch2vec-rl, evolution and random.

Timings depend on the machine's load; on a shared 2-core machine they are noisy.

Usage:
    python benchmarks/bench_arch2vec.py                 # -> benchmarks/results/arch2vec.json
    python benchmarks/bench_arch2vec.py --quality --seeds 10
                                                        # -> benchmarks/results/arch2vec_quality.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import shared, write  # noqa: E402

CHECKPOINTS = (50, 100, 150)
TABLE1_KEYS = ("reconstruction_accuracy", "validity", "uniqueness")


def _bench(csv: str):
    from raynas import benchmarks

    return benchmarks.load("nasbench201", path=csv, dataset="cifar10")


def study(bench, method: str, seed: int, budget: int, options: dict) -> dict:
    """One simulated study on one worker; its wall time, best-so-far curve and round times."""
    from raynas.runner import simulate
    from raynas.searchers import get_searcher

    start = time.perf_counter()
    searcher = get_searcher(method, bench.space, metric="test_accuracy", mode="max", seed=seed, **options)
    rounds: list[float] = []
    if hasattr(searcher, "round"):
        inner = searcher.round

        def timed(ok):
            t = time.perf_counter()
            out = inner(ok)
            rounds.append(time.perf_counter() - t)
            return out

        searcher.round = timed
    state = simulate(searcher, bench, budget, workers=1)
    wall = time.perf_counter() - start
    best = np.maximum.accumulate([r["test_accuracy"] for r in state.rows]).tolist()
    return {"wall_s": wall, "best": best, "round_s": rounds}


def table1(emb) -> dict:
    from raynas.searchers.arch2vec import PAPER_TABLE1

    m = emb.metrics
    ours = {k: round(float(m[k]), 2) for k in TABLE1_KEYS if k in m}
    ours.update({k: round(float(m[k]), 2) for k in ("ops_accuracy", "adj_accuracy", "exact_reconstruction",
                                                    "validity_published", "uniqueness_published") if k in m})
    paper = dict(zip(TABLE1_KEYS, PAPER_TABLE1[emb.space.name]))
    return {"ours": ours, "paper": paper, "n_train": m["n_train"], "n_test": m["n_test"],
            "pretrain_s": round(float(m["train_seconds"]), 1)}


def speed(csv: str, seeds: int, budget: int) -> dict:
    import torch

    from raynas.searchers.arch2vec import PretrainOptions, load_embeddings, pretrain
    from raynas.spaces import get_space

    torch.set_num_threads(1)  # a study runs in a one-CPU Ray trial
    bench = _bench(csv)
    out: dict = {}
    peer = study(bench, "evolution", 0, budget, {})
    folder = tempfile.mkdtemp(prefix="arch2vec-bench-")
    t = time.perf_counter()
    emb = load_embeddings(bench.space, PretrainOptions(), folder, progress=False, num_threads=1)
    one = time.perf_counter() - t
    t = time.perf_counter()
    pretrain(bench.space, PretrainOptions(latent_points=0), progress=False, num_threads=2)
    two = time.perf_counter() - t
    out["pretrain_nasbench201"] = {
        "cells": len(emb.keys), "epochs": PretrainOptions().epochs,
        "one_thread_s": round(one, 1), "two_threads_s": round(two, 1),
        "peer_evolution_study_s": round(peer["wall_s"], 3),
    }
    print(f"pretraining on all of NAS-Bench-201 ({len(emb.keys)} cells): {one:.1f} s on 1 thread, "
          f"{two:.1f} s on 2 (peer: a {budget}-query evolution study, {peer['wall_s']:.2f} s)")
    out["table1"] = {"nasbench201": table1(emb)}
    t = time.perf_counter()
    nb101 = load_embeddings(get_space("nasbench101"), PretrainOptions(), progress=False, num_threads=1)
    out["table1"]["nasbench101"] = table1(nb101)
    out["table1"]["nasbench101"]["load_or_pretrain_s"] = round(time.perf_counter() - t, 1)
    for name, t1 in out["table1"].items():
        print(f"Table 1 {name}: ours {t1['ours']}  paper {t1['paper']}")
    studies = {}
    for method in ("arch2vec-bo", "arch2vec-rl", "evolution", "random"):
        options = {"cache_dir": folder} if method.startswith("arch2vec") else {}
        runs = [study(bench, method, seed, budget, options) for seed in range(seeds)]
        walls = [r["wall_s"] for r in runs]
        rounds = [x for r in runs for x in r["round_s"]]
        studies[method] = {
            "mean_wall_s": round(float(np.mean(walls)), 3), "max_wall_s": round(float(np.max(walls)), 3),
            "mean_best": round(float(np.mean([r["best"][-1] for r in runs])), 4),
        }
        if rounds:
            studies[method].update(rounds_per_study=len(rounds) / seeds, mean_round_s=round(float(np.mean(rounds)), 4),
                                   max_round_s=round(float(np.max(rounds)), 4))
        print(f"{method:12s} {budget} queries: {np.mean(walls):6.2f} s (max {np.max(walls):.2f})  "
              f"best {studies[method]['mean_best']:.3f}"
              + (f"  round {np.mean(rounds) * 1000:.0f} ms" if rounds else ""))
    studies["arch2vec-bo"]["target_s"] = 60.0
    studies["arch2vec-bo"]["meets_target"] = studies["arch2vec-bo"]["max_wall_s"] <= 60.0
    out["studies"] = {"budget": budget, "seeds": seeds, "cached_embeddings": True, "methods": studies}
    return out


def quality(csv: str, seeds: int, methods: list[str]) -> dict:
    bench = _bench(csv)
    optimum = bench.optimum("test_accuracy")
    table = {}
    for method in methods:
        best = np.array([[r["best"][q - 1] for q in CHECKPOINTS] for r in
                         (study(bench, method, s, max(CHECKPOINTS), {}) for s in range(seeds))])  # (seeds, 3)
        table[method] = {
            "seeds": seeds,
            "mean": dict(zip(map(str, CHECKPOINTS), best.mean(0).round(4).tolist())),
            "regret": dict(zip(map(str, CHECKPOINTS), (optimum - best.mean(0)).round(4).tolist())),
            "stderr": dict(zip(map(str, CHECKPOINTS), (best.std(0) / np.sqrt(len(best))).round(4).tolist())),
        }
        print(f"{method:12s} " + "  ".join(f"{q}: {table[method]['mean'][str(q)]:.3f} "
                                           f"(± {table[method]['stderr'][str(q)]:.3f})" for q in CHECKPOINTS), flush=True)
    return {"optimum": optimum, "seeds": seeds, "checkpoints": list(CHECKPOINTS), "table": table}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quality", action="store_true", help="run the multi-seed quality study")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=150)
    ap.add_argument("--methods", default="arch2vec-bo,arch2vec-rl,evolution,random")
    args = ap.parse_args()
    csv = shared("nasbench201/nats_bench.csv")
    if csv is None:
        return
    if args.quality:
        write("arch2vec_quality", quality(str(csv), args.seeds, args.methods.split(",")))
    else:
        write("arch2vec", speed(str(csv), args.seeds, args.budget))


if __name__ == "__main__":
    main()
