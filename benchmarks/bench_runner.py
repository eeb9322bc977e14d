"""Speed of the execution paths, each next to the same work done by Optuna alone.

1. Simulated path: queries/s of `random` and `evolution` on NB201 (targets 20,000/s, 5,000/s).
2. Ray Tune path: per-trial overhead with 2 CPUs (target <= 0.15 s).
3. `raynas compare` of random, evolution, reinforce and tpe x 20 seeds x 100 queries on NB201
   (target < 3 minutes on 2 cores, Ray start-up included).
Optuna alone: the same number of table lookups driven by `study.optimize` with its random and
TPE samplers, no raynas around it. Writes benchmarks/results/runner.json.
Usage: python benchmarks/bench_runner.py [--skip-compare]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import optuna
from _common import shared, write

from raynas import benchmarks
from raynas.runner import simulate
from raynas.searchers import get_searcher

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def optuna_alone(bench, sampler: str, n: int, seed: int) -> float:
    """Seconds for `n` trials of Optuna on the table lookup; returns wall time."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = bench.space
    edges = list(space.to_config(space.sample(__import__("numpy").random.default_rng(0))))
    smp = optuna.samplers.RandomSampler(seed=seed) if sampler == "random" else optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=smp)

    def objective(trial):
        cfg = {e: trial.suggest_categorical(e, list(space.ops)) for e in edges}
        return bench.query(space.from_config(cfg))["test_accuracy"]

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-compare", action="store_true")
    args = parser.parse_args()
    csv = shared("nasbench201/nats_bench.csv")
    if csv is None:
        return
    bench = benchmarks.load("nasbench201", path=csv)
    out: dict = {}

    # 1. simulated path
    n = 2000
    for method in ("random", "evolution"):
        rates = []
        for seed in range(5):
            s = get_searcher(method, bench.space, metric="test_accuracy", mode="max", seed=seed)
            t0 = time.perf_counter()
            simulate(s, bench, n, workers=4)
            rates.append(n / (time.perf_counter() - t0))
        out[f"sim_{method}_queries_per_s"] = round(sorted(rates)[len(rates) // 2])
        print(f"simulated {method:10} {out[f'sim_{method}_queries_per_s']:>10,} queries/s (median of 5)")
    out["optuna_random_queries_per_s"] = round(n / optuna_alone(bench, "random", n, 0))
    print(f"optuna alone, RandomSampler {out['optuna_random_queries_per_s']:>8,} queries/s")

    # 2. Tune path
    import ray

    from raynas.runner._compare import CompareConfig, compare

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    tmp = tempfile.mkdtemp()
    trials = 100
    cfg = CompareConfig(benchmark="nasbench201", methods=["random"], seeds=1, budget=trials, data=str(csv),
                        metric="test_accuracy", workers=2, backend="tune")
    t0 = time.perf_counter()
    compare(cfg, os.path.join(tmp, "tune"), progress=False)
    per_trial = (time.perf_counter() - t0) / trials
    out["tune_per_trial_s"] = round(per_trial, 4)
    out["optuna_per_trial_s"] = round(optuna_alone(bench, "random", trials, 0) / trials, 5)
    print(f"Tune path: {per_trial:.3f} s per trial (2 CPUs, actor reuse); Optuna alone "
          f"{out['optuna_per_trial_s'] * 1000:.2f} ms per trial")
    ray.shutdown()

    # 3. compare
    if not args.skip_compare:
        import subprocess
        import sys

        dest = os.path.join(tmp, "cmp")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "raynas.cli", "compare", "--benchmark", "nasbench201", "--data",
                        str(csv), "--metric", "test_accuracy", "--methods", "random,evolution,reinforce,tpe",
                        "--seeds", "20", "--budget", "100", "--out", dest, "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
        out["compare_4x20x100_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        for seed in range(20):
            optuna_alone(bench, "random", 100, seed)
            optuna_alone(bench, "tpe", 100, seed)
        out["optuna_random_tpe_20x100_s"] = round(time.perf_counter() - t0, 1)
        print(f"raynas compare 4 methods x 20 seeds x 100 queries: {out['compare_4x20x100_s']} s "
              f"(Ray start-up included); Optuna alone, random + TPE x 20 seeds x 100 trials, "
              f"sequential: {out['optuna_random_tpe_20x100_s']} s")
    shutil.rmtree(tmp, ignore_errors=True)
    write("runner", out)


if __name__ == "__main__":
    main()
