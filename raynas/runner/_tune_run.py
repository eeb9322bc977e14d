"""The Ray Tune path: one Tune trial per query, the searcher under ``ConcurrencyLimiter``.

This is the path that real training and supernet evaluation use. For tabular benchmarks the
trainable is :func:`raynas.trainables.tabular.tabular_trainable` over a ``TabularEvaluator``,
which reaches each
worker once through ``tune.with_parameters`` (the object store), and actors are reused.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from raynas._errors import RaynasError, UnknownNameError, check_positive
from raynas.benchmarks import check_dataset, default_mode, get_spec, load
from raynas.runner._compare import (
    EXPERIMENT_FILE,
    RESULTS_FILE,
    ExperimentExistsError,
    _init_ray,
    add_incumbent,
    resolve_metric,
    write_rows,
)
from raynas.runner._study import StudySpec, build_searcher
from raynas.searchers import check_options, searcher_names
from raynas.trainables.evaluator import Evaluator, TabularEvaluator
from raynas.trainables.tabular import tabular_trainable


@dataclass
class TuneRunConfig:
    benchmark: str
    method: str
    seed: int
    budget: int
    dataset: str | None = None
    data: str | None = None
    metric: str | None = None
    workers: int = 1
    fidelity: int | None = None
    max_cost: dict[str, float] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    name: str = "run"

    def validate(self) -> None:
        self.dataset = check_dataset(get_spec(self.benchmark), self.dataset)
        check_positive("budget", self.budget)
        check_positive("workers", self.workers)
        check_positive("cpus_per_trial", self.cpus_per_trial)
        if self.method not in searcher_names():
            raise UnknownNameError("method", self.method, searcher_names())
        check_options(self.method, self.options)


def _trainable(cfg: TuneRunConfig, evaluator: Evaluator):
    from ray import tune

    res = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(tabular_trainable, bench=evaluator, fidelity=cfg.fidelity), res)


def run_tune(cfg: TuneRunConfig, out: str | os.PathLike, resume: bool = False, verbose: int = 0) -> Path:
    """Run ``cfg.method`` with one Tune trial per query; returns ``results.parquet``."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    out = Path(out).resolve()
    if (out / EXPERIMENT_FILE).exists():
        if not resume:
            raise ExperimentExistsError(f"{out} already holds an experiment; pass --resume or choose another --out")
        return resume_tune(out, verbose=verbose)
    cfg.validate()
    out.mkdir(parents=True, exist_ok=True)
    (out / EXPERIMENT_FILE).write_text(json.dumps({"kind": "tune-run", **asdict(cfg)}, indent=2))
    bench = load(cfg.benchmark, path=cfg.data, dataset=cfg.dataset)
    metric = resolve_metric(bench, cfg.metric)
    evaluator = TabularEvaluator(bench)
    mode = default_mode(metric)
    spec = StudySpec(cfg.method, cfg.seed, metric, mode, cfg.budget, cfg.workers, cfg.fidelity,
                     dict(cfg.max_cost), dict(cfg.options))
    searcher = build_searcher(spec, evaluator)
    _init_ray()
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    tuner = tune.Tuner(
        _trainable(cfg, evaluator),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=cfg.workers),
            num_samples=cfg.budget, metric=metric, mode=mode, reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="tune", storage_path=str(out), verbose=verbose,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    return _collect(tuner.fit(), cfg, evaluator, metric, out)


def resume_tune(out: str | os.PathLike, verbose: int = 0) -> Path:
    """Continue an interrupted Tune-path run with ``Tuner.restore``."""
    from ray import tune

    out = Path(out).resolve()
    data = json.loads((out / EXPERIMENT_FILE).read_text())
    if data.pop("kind", None) != "tune-run":
        raise RaynasError(f"{out} does not hold a --backend tune run")
    cfg = TuneRunConfig(**data)
    bench = load(cfg.benchmark, path=cfg.data, dataset=cfg.dataset)
    metric = resolve_metric(bench, cfg.metric)
    evaluator = TabularEvaluator(bench)
    _init_ray()
    tuner = tune.Tuner.restore(str(out / "tune"), trainable=_trainable(cfg, evaluator), resume_errored=True)
    return _collect(tuner.fit(), cfg, evaluator, metric, out)


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


def _collect(grid, cfg: TuneRunConfig, evaluator: Evaluator, metric: str, out: Path) -> Path:
    rows = []
    for query, (index, result) in enumerate(trials_in_order(grid)):
        metrics = result.metrics or {}
        error = None if result.error is None else f"{type(result.error).__name__}: {result.error}"
        config = result.config
        rows.append({
            "experiment": cfg.name, "method": cfg.method, "seed": cfg.seed, "query": query,
            "suggestion": index, "time": None, "key": metrics.get("key"),
            "config": json.dumps(config, sort_keys=True),
            **{m: metrics.get(m) for m in evaluator.metrics}, "error": error,
        })
    add_incumbent(rows, metric, default_mode(metric))
    path = out / RESULTS_FILE
    write_rows(rows, path, evaluator.metrics)
    return path
