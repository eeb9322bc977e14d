"""NAS-Bench-Macro from its published JSON (key -> test_acc runs, mean_acc, params, flops)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from raynas._errors import BenchmarkFormatError, InvalidArchitectureError, excerpt
from raynas.benchmarks._registry import warn_incomplete
from raynas.benchmarks._table import TabularBenchmark
from raynas.spaces._nasbench_macro import NASBenchMacroSpace

TIME_MODEL = "no training time in the JSON: simulated seconds = FLOPs / 1e5 (about 470 s at 47 MFLOPs)"


def time_fn(arch, results) -> float:
    return float(results["flops"]) / 1e5


TIME_FN = time_fn


def load_nasbench_macro(path: Path, dataset: str, **options) -> TabularBenchmark:
    """Load NAS-Bench-Macro: 3 runs of test accuracy per cell, plus params and FLOPs."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchmarkFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise BenchmarkFormatError(f"{path}: expected an object of key -> results")
    warn_incomplete("nasbench_macro", len(data), str(path))
    space = NASBenchMacroSpace()
    keys = list(data)
    n_runs = max((len(v.get("test_acc", [])) for v in data.values()), default=1) or 1
    values = np.full((len(keys), 1, n_runs, 3), np.nan)
    for i, key in enumerate(keys):
        rec = data[key]
        try:
            space.from_string(key)
            runs = rec.get("test_acc") or [rec["mean_acc"]]
            values[i, 0, : len(runs), 0] = runs
            values[i, 0, :, 1] = rec["params"]
            values[i, 0, :, 2] = rec["flops"]
        except (InvalidArchitectureError, KeyError, TypeError) as exc:
            raise BenchmarkFormatError(f"{path}: bad record {excerpt(key)}: {exc}") from None
    return TabularBenchmark(
        "nasbench_macro", space, keys, keys, values, ["test_accuracy", "params", "flops"],
        dataset=dataset, source=str(path), time_model=TIME_MODEL, time_fn=time_fn,
    )
