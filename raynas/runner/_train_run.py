"""`raynas run --trainable train`: search by training every proposed network, one Tune trial each.

The searcher runs under ``ConcurrencyLimiter``; each trial builds ``build_network(space, arch)``
and trains it with :func:`raynas.trainables.train.train_trainable`, which reports
``val_accuracy`` (the objective), ``train_loss``, ``epoch_time`` and ``images_per_s`` every epoch
and ``test_accuracy`` after the last. The dataset reaches every worker once, through the object
store (``tune.with_parameters``). A trial that raises (a cell that cannot be built, a diverging
loss) is recorded with its error and the search goes on. The rows of ``results.parquet`` have the
columns of the other runs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from raynas._errors import UnknownNameError, check_positive
from raynas.runner._compare import (
    EXPERIMENT_FILE,
    RESULTS_FILE,
    ExperimentExistsError,
    _init_ray,
    add_incumbent,
    write_rows,
)
from raynas.runner._tune_run import trials_in_order
from raynas.searchers import check_options, get_searcher, searcher_names
from raynas.spaces import get_space, space_names

METRIC, MODE = "val_accuracy", "max"
#: Result columns beyond the common ones, in order.
TRAIN_METRICS = ("val_accuracy", "test_accuracy", "train_loss", "epoch_time", "images_per_s")


@dataclass
class TrainRunConfig:
    """Everything that defines a training search; stored as ``DIR/experiment.json``.

    Attributes:
        space: Search space with an image network (nasbench201, nasbench_macro, nasbench101, darts).
        method: Search strategy (see ``raynas searchers``).
        seed: Seed of the searcher, the data split, the initialisation and the data order.
        budget: Architectures to train.
        dataset: ``digits`` (bundled, upsampled to 3 channels), ``cifar10``, ``cifar100`` or
            ``imagefolder``.
        data: Folder of the dataset files (all but digits).
        epochs: Training epochs per architecture; 12 is the short schedule NAS-Bench-201 also
            tabulates (Dong & Yang, ICLR 2020).
        batch_size: Training batch size (NAS-Bench-201: 256).
        lr: Initial learning rate of SGD with a cosine schedule (NAS-Bench-201: 0.1).
        image_size: Side of the digits images (8 native; 32 like CIFAR); ignored otherwise.
        workers: Trials trained at the same time.
        options: Searcher options.
        network: Network options, e.g. ``{"channels": 8}`` for NAS-Bench-201.
        cpus_per_trial: CPUs reserved for each trial.
        gpus_per_trial: GPUs reserved for each trial (0: train on CPU).
        name: Experiment name in the results.
    """

    space: str
    method: str
    seed: int = 0
    budget: int = 10
    dataset: str = "digits"
    data: str | None = None
    epochs: int = 12
    batch_size: int = 256
    lr: float = 0.1
    image_size: int = 32
    workers: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    network: dict[str, Any] = field(default_factory=dict)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    name: str = "run"

    def validate(self) -> None:
        """Check every name and number, and build one network, before anything starts."""
        import numpy as np

        from raynas.trainables.data import DATASETS
        from raynas.trainables.networks import build_network, check_network_space

        if self.space not in space_names():
            raise UnknownNameError("space", self.space, space_names())
        check_network_space(self.space)
        if self.dataset not in DATASETS:
            raise UnknownNameError("dataset", self.dataset, DATASETS)
        if self.dataset != "digits" and self.data is None:
            raise ValueError(f"dataset {self.dataset!r} needs --data, the folder of its files")
        for name in ("budget", "epochs", "batch_size", "lr", "image_size", "workers", "cpus_per_trial"):
            check_positive(name, getattr(self, name))
        if self.gpus_per_trial < 0:
            raise ValueError(f"gpus_per_trial must not be negative, got {self.gpus_per_trial}")
        if self.method not in searcher_names():
            raise UnknownNameError("method", self.method, searcher_names())
        check_options(self.method, self.options)
        space = get_space(self.space)
        try:
            build_network(space, space.sample(np.random.default_rng(0)), **self.network)
        except TypeError as exc:
            raise ValueError(f"bad network options {self.network} for {self.space}: {exc}") from None


def build_model(config: dict[str, Any], space: str, num_classes: int, network: dict[str, Any]):
    """The ``model_fn`` of a trial: its Tune config -> architecture -> ``nn.Module``."""
    from raynas.trainables.networks import build_network

    sp = get_space(space)
    return build_network(sp, sp.from_config(config), num_classes, **network)


def load_splits(cfg: TrainRunConfig):
    """The dataset of ``cfg``; digits come as 3-channel images of side ``cfg.image_size``."""
    from raynas.trainables.data import load_dataset

    if cfg.dataset == "digits":
        return load_dataset("digits", seed=cfg.seed, image_size=cfg.image_size, channels=3)
    return load_dataset(cfg.dataset, cfg.data, seed=cfg.seed)


def run_train(cfg: TrainRunConfig, out: str | os.PathLike, verbose: int = 0) -> Path:
    """Train ``cfg.budget`` architectures proposed by ``cfg.method``; returns ``results.parquet``."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from raynas.trainables.train import TrainConfig, train_trainable

    out = Path(out).resolve()
    if (out / EXPERIMENT_FILE).exists():
        raise ExperimentExistsError(f"{out} already holds an experiment; choose another --out")
    cfg.validate()
    splits = load_splits(cfg)  # a missing or malformed dataset fails before anything is written
    space = get_space(cfg.space)
    searcher = get_searcher(cfg.method, space, metric=METRIC, mode=MODE, seed=cfg.seed, **cfg.options)
    out.mkdir(parents=True, exist_ok=True)
    (out / EXPERIMENT_FILE).write_text(json.dumps({"kind": "train-run", **asdict(cfg)}, indent=2))
    _init_ray()
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    model_fn = partial(build_model, space=cfg.space, num_classes=splits.num_classes, network=dict(cfg.network))
    train_config = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr)
    trainable = tune.with_parameters(
        train_trainable, model_fn=model_fn, data_ref_or_splits=splits, train_config=train_config, seed=cfg.seed,
    )
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=cfg.workers),
            num_samples=cfg.budget, metric=METRIC, mode=MODE,
        ),
        run_config=tune.RunConfig(
            name="tune", storage_path=str(out), verbose=verbose,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    start = time.time()
    return _collect(tuner.fit(), cfg, start, out)


def _error_line(error: BaseException) -> str:
    """The last line of a trial's error (``ValueError: ...``), without the worker's traceback."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _collect(grid, cfg: TrainRunConfig, start: float, out: Path) -> Path:
    space = get_space(cfg.space)
    rows = []
    for query, (index, result) in enumerate(trials_in_order(grid)):
        metrics = result.metrics or {}
        error = None if result.error is None else _error_line(result.error)
        config = {k: v for k, v in result.config.items() if k != "seed"}
        finished = metrics.get("timestamp")
        rows.append({
            "experiment": cfg.name, "method": cfg.method, "seed": cfg.seed, "query": query,
            "suggestion": index, "time": None if finished is None else max(0.0, finished - start),
            "key": space.key(space.from_config(config)), "config": json.dumps(config, sort_keys=True),
            **{m: (metrics.get(m) if error is None else None) for m in TRAIN_METRICS},
            "error": error,
        })
    add_incumbent(rows, METRIC, MODE)
    path = out / RESULTS_FILE
    write_rows(rows, path, TRAIN_METRICS)
    return path
