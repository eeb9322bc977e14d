"""Load: `raynas compare` of about 200 studies x 150 queries, with the memory of every process.

Six methods (random, evolution, tpe, reinforce, local, and NAO with the conformance suite's small
options) x ceil(200 / 6) = 34 seeds on NAS-Bench-201 (../shared/data; NAS-Bench-Graph/Cora, which
ships with its package, where that is absent). The compare runs as its own process, as a user
runs it; every second this script samples the resident memory (RSS) of that driver, of Ray's
worker processes (the studies' actors) and of Ray's own processes (raylet, GCS, agents).

Reported: wall time, studies/s, and the mean RSS of the driver and of the workers in the first
and in the last quarter of the sweep (from the first study checkpoint to the last study's final
one), with the growth ratio last/first (target: at most 1.2), and the peak RSS of the driver
while it gathers the results afterwards. Writes benchmarks/results/load.json.
Usage: python benchmarks/bench_load.py [--studies 12] [--budget 150] [--methods random,tpe]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _common import ROOT, SHARED, write

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

METHODS = ("random", "evolution", "tpe", "reinforce", "local", "nao")
#: NAO's small settings (the conformance suite's): a study of 150 queries takes seconds, not minutes.
NAO = {"n_initial": 8, "batch": 4, "pretrain_epochs": 5, "epochs": 1, "warmup_epochs": 1, "top_k": 20,
       "max_step_size": 20, "train_batch_size": 50, "device": "cpu"}
AGENTS = ("ray::Dashboard", "ray::RuntimeEnv")
MB = 1024 * 1024


def benchmark_args() -> tuple[str, list[str]]:
    csv = SHARED / "nasbench201" / "nats_bench.csv"
    if csv.is_file():
        return "nasbench201", ["--benchmark", "nasbench201", "--data", str(csv), "--metric", "test_accuracy"]
    print(f"{csv} is absent: NAS-Bench-Graph (Cora) instead")
    return "nasbench_graph", ["--benchmark", "nasbench_graph", "--dataset", "cora", "--metric", "val_accuracy"]


def sample(driver: psutil.Process) -> dict[str, float] | None:
    """RSS in MB of the driver, of Ray's workers, and of Ray's own processes (None once the driver is gone)."""
    try:
        rss = {"driver": driver.memory_info().rss / MB, "workers": 0.0, "ray": 0.0, "n_workers": 0}
        children = driver.children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for child in children:
        try:
            name, mem = child.name(), child.memory_info().rss / MB
        except psutil.NoSuchProcess:
            continue
        if name.startswith("ray::") and not name.startswith(AGENTS):
            rss["workers"] += mem
            rss["n_workers"] += 1
        else:
            rss["ray"] += mem
    return rss


def finished_studies(out: Path, budget: int) -> int:
    return len(list(out.glob(f"studies/*/checkpoint-{budget:06d}.pt")))


def quarter_means(samples: list[dict], start: float, end: float) -> dict[str, dict[str, float]]:
    span = end - start
    first = [s for s in samples if start <= s["t"] <= start + span / 4]
    last = [s for s in samples if end - span / 4 <= s["t"] <= end]
    out = {}
    for key in ("driver", "workers", "ray"):
        a = sum(s[key] for s in first) / max(len(first), 1)
        b = sum(s[key] for s in last) / max(len(last), 1)
        out[key] = {"first_quarter_mb": round(a, 1), "last_quarter_mb": round(b, 1),
                    "ratio": round(b / a, 3) if a else None}
    out["samples"] = {"first_quarter": len(first), "last_quarter": len(last)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--budget", type=int, default=150)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--checkpoint-every", type=int, default=25)
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    seeds = math.ceil(args.studies / len(methods))
    studies = seeds * len(methods)
    bench, bench_args = benchmark_args()
    tmp = Path(tempfile.mkdtemp())
    out = tmp / "load"
    cmd = [sys.executable, "-m", "raynas.cli", "compare", *bench_args, "--methods", ",".join(methods),
           "--seeds", str(seeds), "--budget", str(args.budget), "--checkpoint-every", str(args.checkpoint_every),
           "--out", str(out), "--quiet"]
    if "nao" in methods:
        cmd += [f"--set=nao.{k}={v}" for k, v in NAO.items()]
    print(f"{len(methods)} methods x {seeds} seeds = {studies} studies x {args.budget} queries on {bench}, "
          f"{os.cpu_count()} cores, load average before {os.getloadavg()[0]:.2f}")
    load_before = os.getloadavg()
    samples: list[dict] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    driver = psutil.Process(proc.pid)
    first_checkpoint = last_final = None
    while proc.poll() is None:
        rss = sample(driver)
        now = time.perf_counter() - t0
        if rss is not None:
            done = finished_studies(out, args.budget)
            if first_checkpoint is None and any(out.glob("studies/*/checkpoint-*.pt")):
                first_checkpoint = now
            if last_final is None and done == studies:
                last_final = now
            samples.append({"t": now, "done": done, **rss})
        time.sleep(max(0.0, 1.0 - (time.perf_counter() - t0 - now)))
    wall = time.perf_counter() - t0
    stderr = proc.stderr.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"compare failed ({proc.returncode}):\n{stderr[-3000:]}")
    load_after = os.getloadavg()
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "results.parquet").num_rows
    errors = pq.read_table(out / "results.parquet", columns=["error"]).column("error").null_count
    last_final = last_final or wall
    memory = quarter_means(samples, first_checkpoint or 0.0, last_final)
    gather = [s["driver"] for s in samples if s["t"] >= last_final]
    result = {
        "benchmark": bench, "methods": methods, "seeds": seeds, "studies": studies, "budget": args.budget,
        "checkpoint_every": args.checkpoint_every, "rows": rows, "error_rows": rows - errors,
        "wall_s": round(wall, 1), "studies_per_s": round(studies / wall, 3),
        "sweep_s": round(last_final - (first_checkpoint or 0.0), 1),
        "gather_s": round(wall - last_final, 1),
        "rss": memory,
        "driver_peak_mb": round(max(s["driver"] for s in samples), 1),
        "driver_gather_peak_mb": round(max(gather), 1) if gather else None,
        "workers_peak_mb": round(max(s["workers"] for s in samples), 1),
        "max_workers": max(s["n_workers"] for s in samples),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "niceness": os.nice(0),
        "target_ratio": 1.2,
        # one sample a second: seconds, studies finished, RSS (MB) of the driver, the workers, Ray's own
        "series": [[round(s["t"], 1), s["done"], round(s["driver"]), round(s["workers"]), round(s["ray"])]
                   for s in samples],
    }
    print(f"wall {result['wall_s']} s ({result['studies_per_s']} studies/s); sweep {result['sweep_s']} s, "
          f"gathering {result['gather_s']} s; {rows:,} rows, {result['error_rows']} error rows")
    for key in ("driver", "workers", "ray"):
        m = memory[key]
        print(f"RSS {key:8} first quarter {m['first_quarter_mb']:8.1f} MB, last quarter {m['last_quarter_mb']:8.1f} MB, "
              f"ratio {m['ratio']} (target <= 1.2)")
    print(f"driver peak {result['driver_peak_mb']} MB (while gathering {result['driver_gather_peak_mb']} MB); "
          f"workers peak {result['workers_peak_mb']} MB over at most {result['max_workers']} processes; "
          f"load average {result['load_average_before'][0]} before, {result['load_average_after'][0]} after")
    shutil.rmtree(tmp, ignore_errors=True)
    write("load", result)


if __name__ == "__main__":
    main()
