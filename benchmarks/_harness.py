"""The figures of ``python -m benchmarks``, each measured beside its peer in the same run.

Every measurement runs on NAS-Bench-Graph (embedded in its PyPI package, so the harness runs on
any machine) and returns :class:`Figure` rows: our figure, its peer's where there is one, and the
ratio ours / peer (absolute times drift on shared machines, ratios much less). Peers:

- search speed and quality: Optuna's ``RandomSampler`` and ``TPESampler`` driving
  ``study.optimize`` directly on the same table, same budget, same token encoding;
- per-trial overhead of the Tune path: plain Ray Tune, its built-in random search
  (``BasicVariantGenerator``) over the same tokens, a function trainable that looks the cell up;
- ``compare`` wall time: Optuna alone running the same studies one after the other;
- training images/s: a hand-written PyTorch loop on the same network (``bench_training.py``).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

DATASET = "cora"
METRIC = "val_accuracy"


@dataclass
class Figure:
    """One row of the harness table: ours next to its peer, measured in the same run."""

    section: str
    name: str
    value: float
    unit: str
    peer: str | None = None
    peer_value: float | None = None
    higher_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.peer_value is None or not self.peer_value:
            return None
        return self.value / self.peer_value

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def bench():
    from raynas import benchmarks

    return benchmarks.load("nasbench_graph", dataset=DATASET)


def _median_rate(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


# ---------------------------------------------------------------------------- 1. lookups
def queries(quick: bool) -> list[Figure]:
    """Query throughput of the table (repeated cells, the key cached) and on first sight."""
    b = bench()
    rng = np.random.default_rng(0)
    archs = [b.space.sample(rng) for _ in range(5_000 if quick else 20_000)]
    cold = bench()
    t0 = time.perf_counter()
    for a in archs:
        cold.query(a)
    first = len(archs) / (time.perf_counter() - t0)

    def warm() -> float:
        t0 = time.perf_counter()
        for a in archs:
            b.query(a)
        return len(archs) / (time.perf_counter() - t0)

    return [Figure("lookups", f"NAS-Bench-Graph/{DATASET} queries, repeated cells", _median_rate(warm, 3), "queries/s"),
            Figure("lookups", f"NAS-Bench-Graph/{DATASET} queries, first sight (key computed)", first, "queries/s")]


# ---------------------------------------------------------------------------- 2. simulated path
def optuna_direct(b, sampler: str, budget: int, seed: int) -> tuple[float, float]:
    """Optuna alone on the table: seconds for ``budget`` trials and the best value found."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = b.space
    choices = [[int(t) for t in np.flatnonzero(row)] for row in space.token_mask()]
    smp = optuna.samplers.RandomSampler(seed=seed) if sampler == "random" else optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=smp)

    def objective(trial) -> float:
        tokens = [trial.suggest_categorical(f"t{i}", c) for i, c in enumerate(choices)]
        return b.query(space.from_sequence(tokens))[METRIC]

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=budget)
    return time.perf_counter() - t0, study.best_value


def raynas_direct(b, method: str, budget: int, seed: int) -> tuple[float, float, object]:
    """Our searcher on the simulated path (one worker): seconds, best value, the searcher."""
    from raynas.runner import simulate
    from raynas.searchers import get_searcher

    t0 = time.perf_counter()
    searcher = get_searcher(method, b.space, metric=METRIC, mode="max", seed=seed)
    state = simulate(searcher, b, budget, workers=1)
    wall = time.perf_counter() - t0
    return wall, max(r[METRIC] for r in state.rows if r.get(METRIC) is not None), searcher


def simulated(quick: bool) -> list[Figure]:
    """Queries/s of every classic searcher on the simulated path; random and TPE beside Optuna's."""
    b = bench()
    seeds = 3 if quick else 10
    out = []
    for method in ("random", "evolution", "local", "reinforce", "tpe"):
        budget = (100 if quick else 200) if method == "tpe" else (1000 if quick else 3000)
        runs = [raynas_direct(b, method, budget, s) for s in range(seeds)]
        rate = statistics.median(budget / w for w, _, _ in runs)
        peer = peer_rate = None
        if method in ("random", "tpe"):
            peers = [optuna_direct(b, method, budget, s) for s in range(seeds)]
            peer, peer_rate = f"Optuna {'RandomSampler' if method == 'random' else 'TPESampler'}", \
                statistics.median(budget / w for w, _ in peers)
        out.append(Figure("search speed", f"{method}, {budget} queries", rate, "queries/s", peer, peer_rate,
                          note=f"median of {seeds} seeds"))
    # quality at a small budget, where samplers differ: mean regret to the table's optimum over seeds
    budget, seeds_q = 50, (10 if quick else 30)
    optimum = b.optimum(METRIC)
    for method in ("random", "tpe"):
        ours = [optimum - raynas_direct(b, method, budget, s)[1] for s in range(seeds_q)]
        theirs = [optimum - optuna_direct(b, method, budget, s)[1] for s in range(seeds_q)]
        out.append(Figure("search quality", f"{method}: mean regret after {budget} queries",
                          float(np.mean(ours)), f"{METRIC} points",
                          f"Optuna {'RandomSampler' if method == 'random' else 'TPESampler'}", float(np.mean(theirs)),
                          higher_is_better=False,
                          note=f"{seeds_q} seeds (std {np.std(ours):.2f} vs {np.std(theirs):.2f}); raynas never "
                               "re-queries a cell, Optuna may"))
    return out


# ---------------------------------------------------------------------------- 3. controllers
def controllers(quick: bool) -> list[Figure]:
    """Controller training time per round of the neural searchers (one CPU thread)."""
    import torch

    torch.set_num_threads(1)
    b = bench()
    out = []
    for method in ("dnas", "seminas", "arch2vec-bo"):
        if method == "arch2vec-bo":  # pretraining is cached per space: build the cache outside the timing
            raynas_direct(b, method, 17, 0)
        budget = 40 if quick else 60  # dnas, seminas: 20 initial cells, then rounds of 10; arch2vec-bo: 16, then 5
        wall, _, searcher = raynas_direct(b, method, budget, 0)
        rounds = getattr(searcher, "rounds", None) or 1
        out.append(Figure("controllers", f"{method}: time per round ({budget} queries)", wall / rounds, "s",
                          note=f"{rounds} rounds, the whole study / rounds"
                               + (" (embeddings cached)" if method == "arch2vec-bo" else "")))
    return out


# ---------------------------------------------------------------------------- 4. Tune path
def _plain_tune(b, trials: int, workers: int, storage: str) -> float:
    """Plain Ray Tune, built-in random search over the same tokens; seconds for ``trials`` trials."""
    from ray import tune

    choices = [[int(t) for t in np.flatnonzero(row)] for row in b.space.token_mask()]

    def trainable(config):
        arch = b.space.from_sequence([config[f"t{i}"] for i in range(len(choices))])
        tune.report({METRIC: b.query(arch)[METRIC]})

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"CPU": 1}),
        param_space={f"t{i}": tune.choice(c) for i, c in enumerate(choices)},
        tune_config=tune.TuneConfig(metric=METRIC, mode="max", num_samples=trials, max_concurrent_trials=workers,
                                    reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, name="plain", verbose=0),
    )
    t0 = time.perf_counter()
    tuner.fit()
    return time.perf_counter() - t0


def tune_path(quick: bool) -> list[Figure]:
    """Per-trial overhead: ``compare --backend tune`` (random) against plain Ray Tune's random search."""
    import logging

    import ray

    from raynas import report
    from raynas.runner._compare import CompareConfig, compare

    # Auto loggers are off for speed, so Tune's result grid warns that it found no result.json.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    trials, workers = (30 if quick else 100), 2
    spent = [0.0]  # seconds in the report files, left out: plain Tune writes none
    write = report.write_report

    def timed_write(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return write(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    b = bench()
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            plain = _plain_tune(b, trials, workers, tmp)
            cfg = CompareConfig(benchmark="nasbench_graph", dataset=DATASET, methods=["random"], seeds=1,
                                budget=trials, workers=workers, backend="tune")
            report.write_report = timed_write
            t0 = time.perf_counter()
            compare(cfg, Path(tmp) / "raynas", progress=False)
            ours = time.perf_counter() - t0 - spent[0]
    finally:
        report.write_report = write
        if started:
            ray.shutdown()
    return [Figure("Tune path", f"per-trial overhead, random, {trials} trials, {workers} at a time", ours / trials,
                   "s/trial", "plain Ray Tune (BasicVariantGenerator)", plain / trials, higher_is_better=False,
                   note=f"ours without the {spent[0]:.1f} s of report files written at the end")]


# ---------------------------------------------------------------------------- 5. compare
def compare_wall(quick: bool) -> list[Figure]:
    """Wall time and peak RSS of a ``raynas compare`` process against Optuna alone, same studies."""
    methods, seeds, budget = ["random", "tpe"], (5 if quick else 20), 50
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "raynas.cli", "compare", "--benchmark", "nasbench_graph", "--dataset", DATASET,
               "--methods", ",".join(methods), "--seeds", str(seeds), "--budget", str(budget),
               "--out", str(Path(tmp) / "cmp"), "--quiet"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ours = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    b = bench()
    t0 = time.perf_counter()
    for s in range(seeds):
        for m in methods:
            optuna_direct(b, m, budget, s)
    alone = time.perf_counter() - t0
    return [
        Figure("compare", f"`raynas compare` {'+'.join(methods)} x {seeds} seeds x {budget} queries", ours, "s",
               "Optuna alone, the same studies in sequence", alone, higher_is_better=False,
               note="ours: a new process, Ray start-up, checkpoints and report included"),
        Figure("memory", "peak RSS of the `raynas compare` driver process", max(rss, before) / 1024, "MB",
               higher_is_better=False, note="ru_maxrss of the largest child so far"),
    ]


# ---------------------------------------------------------------------------- 6. training
def training(quick: bool) -> list[Figure]:
    """Training images/s of ``train_model`` against a plain PyTorch loop (``bench_training.bench_family``)."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_training as bt

    torch.set_num_threads(1)
    images, batch = (64, 32) if quick else (256, 256)
    full = bt.load_dataset("digits", seed=0, image_size=32, channels=3)
    splits = bt.subset_splits(full, images, 2)
    res = bt.bench_family("nasbench201", splits, bt.TrainConfig(epochs=1, batch_size=batch), 1 if quick else 3)
    return [Figure("training", f"NAS-Bench-201 network, {images} images, batch {batch}, 1 thread",
                   res["trainable_images_per_s"], "images/s", "plain PyTorch loop", res["plain_images_per_s"])]


def peak_rss() -> Figure:
    return Figure("memory", "peak RSS of the harness process", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "MB", higher_is_better=False)


SECTIONS = {
    "queries": queries,
    "simulated": simulated,
    "controllers": controllers,
    "tune": tune_path,
    "compare": compare_wall,
    "training": training,
}
