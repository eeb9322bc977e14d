"""The Ray Tune backend of an experiment: one Tune trial per query, the searcher under ``ConcurrencyLimiter``.

This is the path that real training and supernet evaluation use (``backend="tune"`` of a
:class:`~raynas.runner._compare.CompareConfig`). For tabular benchmarks the trainable is
:func:`raynas.trainables.tabular.tabular_trainable` over a ``TabularEvaluator``, which reaches each
worker once through ``tune.with_parameters`` (the object store), and actors are reused.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from raynas.benchmarks import TabularBenchmark, default_mode, load
from raynas.runner._compare import (
    RESULTS_FILE,
    CompareConfig,
    _init_ray,
    add_incumbent,
    resolve_metric,
    write_rows,
)
from raynas.runner._study import StudySpec, build_searcher
from raynas.runner._tune_state import restorable
from raynas.trainables.evaluator import Evaluator, TabularEvaluator
from raynas.trainables.tabular import tabular_trainable


def _trainable(cfg: CompareConfig, evaluator: Evaluator):
    from ray import tune

    res = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(tabular_trainable, bench=evaluator, fidelity=cfg.fidelity), res)


def can_resume(folder: Path) -> bool:
    """Whether the Tune experiment of one study in ``folder`` can be restored exactly.

    A folder whose state a kill cut short (:func:`raynas.runner._tune_state.state_problem`) is
    moved aside, kept as ``<name>.incomplete-<time>``, with a warning, and the study starts again
    from its seed, which gives the same results as an uninterrupted run.
    """
    return restorable(folder, f"study {folder.name}", "it starts again from its seed")


def run_studies(cfg: CompareConfig, out: Path, restore: bool = False, progress: bool = True,
                verbose: int = 0, bench: TabularBenchmark | None = None, root=None) -> Path:
    """Run (or continue) every study of ``cfg`` with one Tune trial per query; returns ``results.parquet``.

    Each study (method x seed) is a Tune experiment in ``out/tune/<method>_seed<seed>``; a
    finished one is kept as it is on ``restore``, an unfinished one continues with ``Tuner.restore``.
    Called by :func:`raynas.runner._compare.compare` for ``backend="tune"``. The Tune
    experiments go to ``root`` (default ``out``; a :class:`~raynas._storage.RemotePath` for
    ``--out s3://...``), the results and reports to ``out``.
    """
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from raynas.runner._compare import write_report
    from raynas.runner._progress import TrialProgress

    if bench is None:
        bench = load(cfg.benchmark, path=cfg.data, dataset=cfg.dataset)
    metric = resolve_metric(bench, cfg.metric)
    evaluator = TabularEvaluator(bench)
    mode = default_mode(metric)
    _init_ray()
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    root = out if root is None else root
    rows: list[dict[str, Any]] = []
    for spec in cfg.studies(metric, mode):
        folder = root / "tune" / spec.name
        bar = TrialProgress(cfg.budget, f"{spec.method} seed {spec.seed}", metric, mode, enabled=progress)
        start = time.time()
        if restore and can_resume(folder):
            tuner = tune.Tuner.restore(str(folder), trainable=_trainable(cfg, evaluator), resume_errored=True)
        else:
            tuner = tune.Tuner(
                _trainable(cfg, evaluator),
                tune_config=tune.TuneConfig(
                    search_alg=ConcurrencyLimiter(build_searcher(spec, evaluator), max_concurrent=cfg.workers),
                    num_samples=cfg.budget, metric=metric, mode=mode, reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    name=spec.name, storage_path=str(root / "tune"), verbose=verbose, callbacks=[bar],
                    failure_config=tune.FailureConfig(max_failures=0),
                ),
            )
        grid = tuner.fit()
        bar.close()
        rows.extend(_study_rows(grid, cfg, spec, evaluator, metric, start))
    path = out / RESULTS_FILE
    write_rows(rows, path, evaluator.metrics)
    write_report(out, cfg, evaluator, metric)
    return path


_TRIAL_DIR = re.compile(r"_[0-9a-f]{8}(?:_\d{5})?_(\d+)(?:_|$)")


def trials_in_order(grid) -> list[tuple[int, Any]]:
    """``(suggestion index, result)`` of every trial of a Tune result grid, in suggestion order.

    The index is the trial counter in the trial's folder name (``<trainable>_<id>_<counter>_<config>``),
    which survives ``Tuner.restore``; the grid's own order does not.
    """
    entries = []
    for position, result in enumerate(grid):
        name = Path(result.path).name if result.path else ""
        match = _TRIAL_DIR.search(name)
        entries.append((int(match.group(1)) - 1 if match else position, result))
    entries.sort(key=lambda e: e[0])
    return entries


def _study_rows(grid, cfg: CompareConfig, spec: StudySpec, evaluator: Evaluator, metric: str,
                start: float) -> list[dict]:
    """The study's rows in suggestion order; ``time``: wall-clock seconds from the study's first trial.

    The origin is the start of the study's earliest trial (its report time less its running time),
    so a finished study read again on resume keeps its times; ``start`` (this run's start) is the
    origin only when no trial reported.
    """
    rows = []
    starts = [m["timestamp"] - (m.get("time_total_s") or 0.0) for m in (r.metrics or {} for r in grid)
              if m.get("timestamp") is not None]
    start = min(starts, default=start)
    for query, (index, result) in enumerate(trials_in_order(grid)):
        metrics = result.metrics or {}
        error = None if result.error is None else f"{type(result.error).__name__}: {result.error}"
        rows.append({
            "experiment": cfg.name, "method": spec.method, "seed": spec.seed, "query": query,
            "suggestion": index, "key": metrics.get("key"),
            "time": None if metrics.get("timestamp") is None else max(0.0, metrics["timestamp"] - start),
            "config": json.dumps(result.config, sort_keys=True),
            **{m: metrics.get(m) for m in evaluator.metrics}, "error": error,
        })
    return add_incumbent(rows, metric, spec.mode)
