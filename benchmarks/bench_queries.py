"""Query throughput of the tabular benchmarks (NB201, NAS-Bench-Macro, NAS-Bench-Graph).

Targets: at least 100,000 lookups/s each. Prints figures and writes benchmarks/results/queries.json.
Usage: python benchmarks/bench_queries.py
"""

from __future__ import annotations

import time

import numpy as np
from _common import shared, write

from raynas import benchmarks


def throughput(bench, archs, repeat: int = 5) -> float:
    bench.query(archs[0])
    start = time.perf_counter()
    for _ in range(repeat):
        for a in archs:
            bench.query(a)
    return repeat * len(archs) / (time.perf_counter() - start)


def main() -> None:
    figures = {}
    rng = np.random.default_rng(0)
    loads = {
        "nasbench201": lambda: benchmarks.load("nasbench201", path=shared("nasbench201/nats_bench.csv")),
        "nasbench_macro": lambda: benchmarks.load("nasbench_macro", path=shared("nasbench_macro/nas-bench-macro_cifar10.json")),
        "nasbench_graph": lambda: benchmarks.load("nasbench_graph", dataset="cora"),
    }
    for name, loader in loads.items():
        t0 = time.perf_counter()
        try:
            bench = loader()
        except TypeError:  # shared file absent
            continue
        load_s = time.perf_counter() - t0
        archs = [bench.space.sample(rng) for _ in range(20000)]
        warm = throughput(bench, archs)  # arch -> row cache filled by the first pass
        cold_bench = loader()
        t0 = time.perf_counter()
        for a in archs:
            cold_bench.query(a)
        cold = len(archs) / (time.perf_counter() - t0)
        figures[name] = {"load_s": round(load_s, 3), "queries_per_s": round(warm), "first_queries_per_s": round(cold)}
        print(f"{name:15} load {load_s:6.2f} s   {warm:12,.0f} queries/s   ({cold:,.0f}/s on first sight, key computed)")
    write("queries", {"target_queries_per_s": 100_000, "results": figures})


if __name__ == "__main__":
    main()
