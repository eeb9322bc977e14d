"""`raynas run|compare --trainable train`: search by training every proposed network, one Tune trial each.

Each study (one method, one seed) is a Tune experiment whose searcher runs under
``ConcurrencyLimiter``; each trial builds ``build_network(space, arch)`` and trains it with
:func:`raynas.trainables.train.train_trainable`, which reports ``val_accuracy`` (the objective),
``train_loss``, ``epoch_time`` and ``images_per_s`` every epoch and ``test_accuracy`` after the
last. With ``hparams`` the searcher is a :class:`~raynas.searchers.JointSearcher`: the NAS strategy
proposes the cell, Optuna's TPE the training hyperparameters, and both learn from every result.
With ``scheduler="asha"`` (or ``"hyperband"``) epochs are the fidelity: a stopped trial reaches the
searchers with the epochs it trained (column ``epoch``). The dataset reaches every worker once per
seed, through the object store (``ray.put``), shared by every study and trial of that seed. A trial that raises (a cell that cannot
be built, a diverging loss) is recorded with its error and the search goes on. Studies checkpoint
through Tune: ``raynas resume`` continues each from where it stopped and skips finished ones.
``results.parquet`` has the columns of the other runs; ``summary.md`` and ``curves.png`` follow.
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

from raynas._errors import RaynasError, UnknownNameError, check_positive
from raynas._storage import is_uri, shown
from raynas.runner._compare import (
    EXPERIMENT_FILE,
    RESULTS_FILE,
    ExperimentExistsError,
    NotAnExperimentError,
    _init_ray,
    add_incumbent,
    check_same,
    push,
    read_definition,
    write_rows,
)
from raynas.runner._hparams import extremes, parse_hparams, to_domains
from raynas.runner._output import experiment_folder, write_definition
from raynas.runner._tune_run import can_resume, trials_in_order
from raynas.searchers import check_options, get_searcher, searcher_names
from raynas.spaces import get_space, space_names

KIND = "train-run"
METRIC, MODE = "val_accuracy", "max"
#: Result columns beyond the common ones, in order (``epoch``: epochs trained, fewer when stopped early).
TRAIN_METRICS = ("val_accuracy", "test_accuracy", "train_loss", "epoch", "epoch_time", "images_per_s")
SCHEDULERS = ("fifo", "asha", "hyperband")
#: GPU share per trial with ``gpus_per_trial="auto"`` on a cluster with GPUs: the NAS-Bench-201
#: and Macro networks (at most 1.5 M and 3 M parameters at 32x32) share a GPU four ways; the
#: NAS-Bench-101 (up to 49 M parameters) and DARTS networks get a whole one.
GPU_SHARE = {"nasbench201": 0.25, "nasbench_macro": 0.25, "nasbench101": 1.0, "darts": 1.0}


@dataclass
class TrainRunConfig:
    """Everything that defines a training search; stored as ``DIR/experiment.json``.

    Attributes:
        space: Search space with an image network (nasbench201, nasbench_macro, nasbench101, darts).
        methods: Search strategies (see ``raynas searchers``); one study per method and seed.
        seeds: Seeds per method (``first_seed`` .. ``first_seed + seeds - 1``). A seed seeds the
            searchers, the data split, the initialisation and the data order.
        first_seed: The first seed.
        budget: Architectures to train per study.
        dataset: ``digits`` (bundled, 3 channels), ``cifar10``, ``cifar100`` or ``imagefolder``.
        data: Folder of the dataset files (all but digits).
        epochs: Training epochs per architecture (the fidelity's maximum); 12 is the short
            schedule NAS-Bench-201 also tabulates (Dong & Yang, ICLR 2020).
        batch_size: Training batch size (NAS-Bench-201: 256).
        lr: Initial learning rate of SGD with a cosine schedule (NAS-Bench-201: 0.1).
        image_size: Side of the digits images (8 native; 32 upsamples to CIFAR's size); ignored otherwise.
        workers: Trials trained at the same time in each study.
        options: Searcher options per method, ``{"dnas": {"eps_dense": 0.3}}``.
        network: Network options, e.g. ``{"channels": 8}`` for NAS-Bench-201.
        hparams: Training hyperparameters searched jointly with the cell: name ->
            ``"loguniform(0.001, 0.2)"`` (see :func:`~raynas.runner._hparams.parse_hparams`);
            they override ``lr``/``batch_size`` and the other :data:`~raynas.trainables.train.TUNABLE`.
        hparam_method: The hyperparameter searcher (``tpe``: Optuna's TPE).
        scheduler: ``fifo`` (every trial trains all epochs), ``asha`` or ``hyperband`` (epochs
            are the fidelity; poor trials stop early).
        cpus_per_trial: CPUs reserved for each trial.
        gpus_per_trial: GPUs per trial; ``"auto"``: :data:`GPU_SHARE` of the space when the
            cluster has GPUs at the start, else 0.
        name: Experiment name in the results.
    """

    space: str
    methods: list[str]
    seeds: int = 1
    first_seed: int = 0
    budget: int = 10
    dataset: str = "digits"
    data: str | None = None
    epochs: int = 12
    batch_size: int = 256
    lr: float = 0.1
    image_size: int = 8
    workers: int = 1
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    network: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, str] = field(default_factory=dict)
    hparam_method: str = "tpe"
    scheduler: str = "fifo"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | str = "auto"
    name: str = "train"

    def validate(self) -> None:
        """Check every name and number, and build one network, before anything starts."""
        import numpy as np

        from raynas.trainables.data import DATASETS
        from raynas.trainables.networks import build_network, check_network_space
        from raynas.trainables.train import TrainConfig, apply_hparams

        if self.space not in space_names():
            raise UnknownNameError("space", self.space, space_names())
        check_network_space(self.space)
        if self.dataset not in DATASETS:
            raise UnknownNameError("dataset", self.dataset, DATASETS)
        if self.dataset != "digits" and self.data is None:
            raise ValueError(f"dataset {self.dataset!r} needs --data, the folder of its files")
        for name in ("seeds", "budget", "epochs", "batch_size", "lr", "image_size", "workers", "cpus_per_trial"):
            check_positive(name, getattr(self, name))
        if self.gpus_per_trial != "auto" and (
            isinstance(self.gpus_per_trial, (bool, str)) or self.gpus_per_trial < 0
        ):
            raise ValueError(f"gpus_per_trial must be a number >= 0 or 'auto', got {self.gpus_per_trial!r}")
        if not self.methods:
            raise ValueError("give at least one method, e.g. --methods dnas,evolution,random")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods are listed twice: {self.methods}")
        for method in self.methods:
            if method not in searcher_names():
                raise UnknownNameError("method", method, searcher_names())
        for method, options in self.options.items():
            if method not in self.methods:
                raise ValueError(f"options are given for {method!r}, which is not among the methods run "
                                 f"({', '.join(self.methods)})")
            check_options(method, options)
        if self.scheduler not in SCHEDULERS:
            raise UnknownNameError("scheduler", self.scheduler, SCHEDULERS)
        if self.hparam_method != "tpe":
            raise UnknownNameError("hyperparameter method", self.hparam_method, ["tpe"])
        base = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr)
        self.hparams = {k: parse_hparams(f"{k}={v}")[k] for k, v in self.hparams.items()}
        for name, spec in self.hparams.items():
            func = spec.partition("(")[0]
            if name == "batch_size" and func in ("uniform", "loguniform"):
                raise ValueError(f"hyperparameter batch_size={spec}: batch_size must be a whole number; "
                                 "use choice(64,128) or randint(32,257)")
            if name == "nesterov" and func != "choice":
                raise ValueError(f"hyperparameter nesterov={spec}: use choice(True,False)")
        for name, values in extremes(self.hparams).items():
            for value in values:
                try:
                    apply_hparams(base, {name: value})
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"hyperparameter {name}={self.hparams[name]}: {exc}") from None
        space = get_space(self.space)
        try:
            build_network(space, space.sample(np.random.default_rng(0)), **self.network)
        except TypeError as exc:
            raise ValueError(f"bad network options {self.network} for {self.space}: {exc}") from None

    def studies(self) -> list[tuple[str, int]]:
        """``(method, seed)`` of every study, in run order."""
        return [(m, self.first_seed + s) for m in self.methods for s in range(self.seeds)]


def build_model(config: dict[str, Any], space: str, num_classes: int, network: dict[str, Any]):
    """The ``model_fn`` of a trial: its Tune config -> architecture -> ``nn.Module``."""
    from raynas.trainables.networks import build_network

    sp = get_space(space)
    return build_network(sp, sp.from_config(config), num_classes, **network)


def load_splits(cfg: TrainRunConfig, seed: int):
    """The dataset of ``cfg`` split by ``seed`` (see :func:`dataset_splits`)."""
    return dataset_splits(cfg.dataset, cfg.data, seed, cfg.image_size)


def dataset_splits(dataset: str, data: str | None, seed: int, image_size: int = 8):
    """``dataset`` split by ``seed``; digits come as 3-channel images of side ``image_size``."""
    from raynas.trainables.data import load_dataset

    if dataset == "digits":
        return load_dataset("digits", seed=seed, image_size=image_size, channels=3)
    return load_dataset(dataset, data, seed=seed)


def resolve_gpus(value: float | str, space: str, cluster_gpus: float | None = None) -> float:
    """GPUs per trial: ``value``, or for ``"auto"`` the space's :data:`GPU_SHARE` if the cluster has GPUs."""
    if value != "auto":
        return float(value)
    if cluster_gpus is None:
        import ray

        cluster_gpus = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else 0
    return GPU_SHARE.get(space, 1.0) if cluster_gpus > 0 else 0.0


def make_searcher(cfg: TrainRunConfig, method: str, seed: int):
    """The study's searcher: the NAS strategy, joined with TPE over ``cfg.hparams`` when given."""
    space = get_space(cfg.space)
    searcher = get_searcher(method, space, metric=METRIC, mode=MODE, seed=seed, **cfg.options.get(method, {}))
    if cfg.hparams:
        from raynas.searchers import JointSearcher

        searcher = JointSearcher(searcher, to_domains(cfg.hparams), seed=seed)
    return searcher


def _scheduler(cfg: TrainRunConfig):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler

    if cfg.scheduler == "asha":
        return ASHAScheduler(time_attr="training_iteration", max_t=cfg.epochs, grace_period=1, reduction_factor=3)
    if cfg.scheduler == "hyperband":
        return HyperBandScheduler(time_attr="training_iteration", max_t=cfg.epochs, reduction_factor=3)
    return FIFOScheduler()


def _trainable(cfg: TrainRunConfig, seed: int, splits_ref, num_classes: int):
    """The study's trainable; ``splits_ref`` is the object-store copy of the data every study of the seed shares."""
    from ray import tune

    from raynas.trainables.train import TrainConfig, train_trainable

    model_fn = partial(build_model, space=cfg.space, num_classes=num_classes, network=dict(cfg.network))
    train_config = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr)
    trainable = tune.with_parameters(
        train_trainable, model_fn=model_fn, data_ref_or_splits=splits_ref, train_config=train_config, seed=seed,
    )
    gpus = resolve_gpus(cfg.gpus_per_trial, cfg.space)
    return tune.with_resources(trainable, {"cpu": cfg.cpus_per_trial, "gpu": gpus})


def study_name(method: str, seed: int) -> str:
    return f"{method}-seed{seed}"


def run_train(cfg: TrainRunConfig, out: str | os.PathLike, resume: bool = False, progress: bool = True,
              verbose: int = 0) -> Path:
    """Run (or, with ``resume``, continue) every study of ``cfg``; returns ``results.parquet``.

    ``out`` may be a storage URI (``s3://bucket/x``): Tune's experiments go there, the results
    and reports are written locally and uploaded.
    """
    shown_out = shown(out)
    out, root = experiment_folder(out, (EXPERIMENT_FILE,))
    cfg = TrainRunConfig(**asdict(cfg))
    if cfg.data is not None and not is_uri(cfg.data):
        cfg.data = str(Path(cfg.data).resolve())
    if (out / EXPERIMENT_FILE).exists():
        check_same(shown_out, asdict(load_train_config(out)), asdict(cfg), resume)
        if not resume:
            raise ExperimentExistsError(f"{shown_out} already holds this experiment; pass --resume (or run "
                                        f"`raynas resume {shown_out}`) to continue it, or choose another --out")
        stored = load_train_config(out)
        stored.validate()
        return _run(stored, out, progress, verbose, root)
    if root.exists() and any(root.iterdir()):
        raise ExperimentExistsError(f"{shown_out} exists and is not a raynas experiment; choose another --out")
    cfg.validate()
    load_splits(cfg, cfg.first_seed)  # a missing or malformed dataset fails before anything is written
    write_definition(out, EXPERIMENT_FILE, {"kind": KIND, **asdict(cfg)})
    push(out, root, EXPERIMENT_FILE)
    return _run(cfg, out, progress, verbose, root)


def load_train_config(out: str | os.PathLike) -> TrainRunConfig:
    data = read_definition(out)
    if data.pop("kind", None) != KIND:
        raise RaynasError(f"{out} does not hold a --trainable train experiment")
    try:
        return TrainRunConfig(**data)
    except TypeError as exc:
        raise NotAnExperimentError(f"{Path(out) / EXPERIMENT_FILE} is not a raynas experiment definition "
                                   f"({exc})") from None


def resume_train(out: str | os.PathLike, progress: bool = True, verbose: int = 0) -> Path:
    """Continue every unfinished study of the experiment in ``out``; finished ones are kept as they are."""
    cfg = load_train_config(out)
    cfg.validate()
    local, root = experiment_folder(out, (EXPERIMENT_FILE,)) if is_uri(out) else (Path(out).resolve(),) * 2
    return _run(cfg, local, progress, verbose, root)


def _run(cfg: TrainRunConfig, out: Path, progress: bool, verbose: int, root=None) -> Path:
    """Run the unfinished studies; Tune writes into ``root`` (default ``out``), the driver into ``out``."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from raynas.runner._progress import TrialProgress

    _init_ray()
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    import ray

    rows: list[dict[str, Any]] = []
    data: dict[int, tuple[Any, int]] = {}  # seed -> (object ref of the splits, classes): one copy per seed
    for method, seed in cfg.studies():
        if seed not in data:
            splits = load_splits(cfg, seed)
            data[seed] = (ray.put(splits), splits.num_classes)
        splits_ref, num_classes = data[seed]
        name = study_name(method, seed)
        folder = (out if root is None else root) / "tune" / name
        bar = TrialProgress(cfg.budget, f"{method} seed {seed}", METRIC, MODE, enabled=progress)
        start = time.time()
        if can_resume(folder):
            # Errored trials stay errored: their failure is a result the searchers were told.
            tuner = tune.Tuner.restore(str(folder), trainable=_trainable(cfg, seed, splits_ref, num_classes),
                                       resume_unfinished=True, resume_errored=False)
        else:
            tuner = tune.Tuner(
                _trainable(cfg, seed, splits_ref, num_classes),
                tune_config=tune.TuneConfig(
                    search_alg=ConcurrencyLimiter(make_searcher(cfg, method, seed), max_concurrent=cfg.workers),
                    scheduler=_scheduler(cfg), num_samples=cfg.budget, metric=METRIC, mode=MODE,
                    reuse_actors=True,  # a new worker process per trial costs seconds; the data stays put
                ),
                run_config=tune.RunConfig(
                    name=name, storage_path=str(folder.parent), verbose=verbose, callbacks=[bar],
                    failure_config=tune.FailureConfig(max_failures=0),
                ),
            )
        grid = tuner.fit()
        bar.close()
        rows.extend(_study_rows(grid, cfg, method, seed, start))
    path = out / RESULTS_FILE
    write_rows(rows, path, TRAIN_METRICS)
    write_train_report(out, cfg)
    push(out, out if root is None else root)
    return path


def _error_line(error: BaseException) -> str:
    """The last line of a trial's error (``ValueError: ...``), without the worker's traceback."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _study_rows(grid, cfg: TrainRunConfig, method: str, seed: int, start: float) -> list[dict[str, Any]]:
    space = get_space(cfg.space)
    rows = []
    for query, (index, result) in enumerate(trials_in_order(grid)):
        metrics = result.metrics or {}
        error = None if result.error is None else _error_line(result.error)
        config = {k: v for k, v in result.config.items() if k != "seed"}
        finished = metrics.get("timestamp")
        rows.append({
            "experiment": cfg.name, "method": method, "seed": seed, "query": query,
            "suggestion": index, "time": None if finished is None else max(0.0, finished - start),
            "key": space.key(space.from_config(config)), "config": json.dumps(config, sort_keys=True),
            **{m: (metrics.get(m) if error is None else None) for m in TRAIN_METRICS},
            "error": error,
        })
    return add_incumbent(rows, METRIC, MODE)


def write_train_report(out: Path, cfg: TrainRunConfig) -> str:
    """Write the report files (:func:`raynas.report.write_report`) of a training search; return ``summary.md``."""
    from raynas import report

    extra = f", hyperparameters {', '.join(f'{k}={v}' for k, v in cfg.hparams.items())}" if cfg.hparams else ""
    heading = (f"{cfg.space} trained on {cfg.dataset} ({cfg.epochs} epochs, {cfg.scheduler}{extra}): "
               f"{len(cfg.methods)} methods x {cfg.seeds} seeds x {cfg.budget} networks")
    return report.write_report(out, report.Experiment(heading, METRIC, None, MODE, "wall", cfg.methods))

