"""`raynas supernet train` and `raynas supernet search`: weight sharing from the command line.

``train`` trains one supernet (SPOS, :mod:`raynas.trainables.supernet`) as a Tune trial with a
checkpoint after every epoch (``raynas resume DIR`` continues it) and writes
``DIR/supernet.pt`` plus ``DIR/supernet.json``, which records the data it was trained on (the
dataset, its split seed and image size), so that a search scores cells on the same validation
images the supernet never trained on.

``search`` is the DNAS paper's ImageNet setting: the supernet is trained once, then every method
searches it under several FLOPs limits in one sweep, training nothing new. Each study (method x
seed x limit) is one Tune trial on the simulated backend, exactly like a tabular ``compare``
(checkpoints in ``DIR/studies/<method>_seed<seed>_flops<limit>/``, resumable); the evaluator,
with the supernet's weights, reaches each worker once through the object store.
``DIR/results.parquet`` has the columns of a comparison plus ``max_flops``;
``DIR/summary.md`` gives, per limit and method, the best supernet accuracy over the seeds
and the FLOPs of the cells found.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raynas._errors import RaynasError, check_positive
from raynas.runner._compare import (
    EXPERIMENT_FILE,
    MAX_FAILURES,
    STUDIES_DIR,
    _init_ray,
    add_incumbent,
    check_methods,
    read_definition,
    stored_definition,
)
from raynas.runner._output import check_output_folder, write_definition
from raynas.runner._study import StudySpec, newest_checkpoint, shared_payloads, study_trainable
from raynas.runner._train_run import dataset_splits
from raynas.runner._tune_state import restorable

TRAIN_KIND, SEARCH_KIND = "supernet-train", "supernet-search"
SUPERNET_FILE, DATA_FILE, RESULTS_FILE = "supernet.pt", "supernet.json", "results.parquet"
log = logging.getLogger("raynas")


@dataclass
class SupernetTrainRun:
    """One supernet: its space, network, data and recipe (stored as ``DIR/experiment.json``)."""

    space: str = "nasbench201"
    dataset: str = "digits"
    data: str | None = None
    image_size: int = 8
    split_seed: int = 0
    epochs: int = 50
    batch_size: int = 64
    lr: float = 0.05
    channels: int | None = None
    cells_per_stage: int | None = None
    network: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def supernet(self):
        from raynas.trainables.supernet import SupernetConfig
        from raynas.trainables.train import TrainConfig

        try:
            return SupernetConfig(space=self.space, channels=self.channels, cells_per_stage=self.cells_per_stage,
                                  network=dict(self.network), seed=self.seed,
                                  train=TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr))
        except (TypeError, ValueError) as exc:
            raise RaynasError(f"bad supernet settings: {exc}") from None

    def splits(self):
        return dataset_splits(self.dataset, self.data, self.split_seed, self.image_size)


def _load(kind: str, cls):
    def load(out: str | os.PathLike):
        data = read_definition(out)
        if data.pop("kind", None) != kind:
            raise RaynasError(f"{out} does not hold a `raynas supernet {kind.split('-')[1]}` run")
        return cls(**data)

    return load


load_train_run = _load(TRAIN_KIND, SupernetTrainRun)


def train(cfg: SupernetTrainRun, out: str | os.PathLike, resume: bool = False, progress: bool = True) -> Path:
    """Train the supernet of ``cfg`` into ``out`` (or go on with it); returns ``out/supernet.pt``."""
    out = check_output_folder(out)
    stored = stored_definition(out, cfg, resume, load_train_run, "run")
    if stored is None:
        cfg.supernet()
        cfg.splits()  # a missing dataset fails before anything is written
        write_definition(out, EXPERIMENT_FILE, {"kind": TRAIN_KIND, **asdict(cfg)})
    return _train(stored or cfg, out, progress)


def _train(cfg: SupernetTrainRun, out: Path, progress: bool) -> Path:
    import ray
    from ray import tune

    from raynas.trainables.supernet import CHECKPOINT_FILE, supernet_trainable

    _init_ray()
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    splits = cfg.splits()
    trainable = tune.with_resources(
        tune.with_parameters(supernet_trainable, data=ray.put(splits), supernet=cfg.supernet()), {"cpu": 1})
    folder = out / "tune"
    if restorable(folder, "the supernet training", "it starts again"):
        tuner = tune.Tuner.restore(str(folder), trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(trainable, param_space={"seed": cfg.seed}, run_config=tune.RunConfig(
            name="tune", storage_path=str(out), verbose=1 if progress else 0,
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES)))
    result = tuner.fit()[0]
    if result.error is not None or result.checkpoint is None:
        raise RaynasError(f"the supernet training failed: {str(result.error).splitlines()[-1] if result.error else 'no checkpoint'}")
    with result.checkpoint.as_directory() as folder_:
        shutil.copyfile(Path(folder_) / CHECKPOINT_FILE, out / (SUPERNET_FILE + ".tmp"))
    (out / (SUPERNET_FILE + ".tmp")).replace(out / SUPERNET_FILE)
    (out / DATA_FILE).write_text(json.dumps({"space": cfg.space, "dataset": cfg.dataset, "data": cfg.data,
                                             "split_seed": cfg.split_seed, "image_size": cfg.image_size}, indent=2))
    return out / SUPERNET_FILE


@dataclass
class SupernetSearchRun:
    """A sweep over a trained supernet: methods x seeds x FLOPs limits (stored as ``experiment.json``)."""

    supernet: str
    methods: list[str]
    seeds: int = 3
    budget: int = 100
    max_flops: list[float | None] = field(default_factory=lambda: [None])
    workers: int = 1
    first_seed: int = 0
    bn_batches: int = 4
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoint_every: int = 25

    def validate(self) -> None:
        check_positive("seeds", self.seeds)
        check_positive("budget", self.budget)
        check_positive("workers", self.workers)
        check_positive("bn_batches", self.bn_batches)
        check_methods(self.methods, self.options)
        if not self.max_flops or len(set(self.max_flops)) != len(self.max_flops):
            raise RaynasError(f"give distinct --max-flops limits (MFLOPs, or none), got {self.max_flops}")
        for limit in self.max_flops:
            if limit is not None:
                check_positive("max_flops", limit)

    def studies(self) -> list[StudySpec]:
        return [StudySpec(method=m, seed=self.first_seed + s, metric="val_accuracy", mode="max", budget=self.budget,
                          workers=self.workers, max_cost={} if lim is None else {"flops": float(lim)},
                          options=dict(self.options.get(m, {})), checkpoint_every=self.checkpoint_every,
                          label="" if lim is None else f"_flops{lim:g}")
                for lim in self.max_flops for s in range(self.seeds) for m in self.methods]


load_search_run = _load(SEARCH_KIND, SupernetSearchRun)


def evaluator_of(supernet: str | os.PathLike, bn_batches: int = 4):
    """The :class:`SupernetEvaluator` of a trained supernet file, on the data it was trained on."""
    from raynas.trainables.supernet import SupernetEvaluator

    path = Path(supernet)
    meta_path = path.with_name(DATA_FILE)
    if not meta_path.is_file():
        raise RaynasError(f"{meta_path} is missing: give the supernet.pt that `raynas supernet train` wrote, "
                          "with its supernet.json beside it")
    meta = json.loads(meta_path.read_text())
    splits = dataset_splits(meta["dataset"], meta.get("data"), meta["split_seed"], meta["image_size"])
    return SupernetEvaluator(path, splits, bn_batches=bn_batches)


def search(cfg: SupernetSearchRun, out: str | os.PathLike, resume: bool = False, progress: bool = True) -> Path:
    """Run (or continue) the sweep into ``out``; returns ``out/results.parquet``."""
    out = check_output_folder(out)
    cfg = dataclasses.replace(cfg, supernet=str(Path(cfg.supernet).resolve()))
    stored = stored_definition(out, cfg, resume, load_search_run, "run")
    if stored is None:
        cfg.validate()
        evaluator_of(cfg.supernet, cfg.bn_batches)  # an unreadable supernet fails before anything is written
        write_definition(out, EXPERIMENT_FILE, {"kind": SEARCH_KIND, **asdict(cfg)})
    return _search(stored or cfg, out, progress)


def _search(cfg: SupernetSearchRun, out: Path, progress: bool) -> Path:
    from ray import tune

    from raynas.runner._progress import StudyProgress

    evaluator = evaluator_of(cfg.supernet, cfg.bn_batches)
    studies = cfg.studies()
    _init_ray()
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    callback = StudyProgress(len(studies), enabled=progress)
    shared = shared_payloads({m: cfg.options.get(m, {}) for m in cfg.methods}, evaluator)
    trainable = tune.with_resources(
        tune.with_parameters(study_trainable, bench=evaluator, store=str(out / STUDIES_DIR), shared=shared),
        {"cpu": 1})
    folder = out / "tune"
    if restorable(folder, "the supernet search", "a fresh one runs every study on from its own checkpoints"):
        tuner = tune.Tuner.restore(str(folder), trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, param_space={"study": tune.grid_search([s.to_dict() for s in studies])},
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(name="tune", storage_path=str(out), verbose=0, callbacks=[callback],
                                      failure_config=tune.FailureConfig(max_failures=MAX_FAILURES)))
    tuner.fit()
    callback.close()
    rows: list[dict[str, Any]] = []
    for spec in studies:
        saved, _ = newest_checkpoint(out / STUDIES_DIR / spec.name)
        sim_rows = saved["sim"].rows if saved else []
        limit = spec.max_cost.get("flops")
        study = [{"experiment": "supernet-search", "method": spec.method, "seed": spec.seed, "max_flops": limit,
                  **r} for r in sim_rows]
        rows.extend(add_incumbent(study, "val_accuracy", "max"))
        if len(sim_rows) < spec.budget:
            rows.append({"experiment": "supernet-search", "method": spec.method, "seed": spec.seed,
                         "max_flops": limit, "query": len(sim_rows),
                         "error": f"study incomplete: {len(sim_rows)} of {spec.budget} queries"})
    path = out / RESULTS_FILE
    columns = {"experiment": pa.string(), "method": pa.string(), "seed": pa.int64(), "max_flops": pa.float64(),
               "query": pa.int64(), "suggestion": pa.int64(), "time": pa.float64(), "key": pa.string(),
               "config": pa.string(), "val_accuracy": pa.float64(), "params": pa.float64(),
               "flops": pa.float64(), "incumbent": pa.float64(), "error": pa.string()}
    table = pa.table({c: pa.array([r.get(c) for r in rows], type=t) for c, t in columns.items()})
    pq.write_table(table, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    (out / "summary.md").write_text(summary(rows, cfg))
    return path


def summary(rows: list[dict[str, Any]], cfg: SupernetSearchRun) -> str:
    """Per limit and method: best supernet accuracy (mean ± std over seeds) and the FLOPs of the best cells."""
    lines = [f"# Supernet search: {len(cfg.methods)} methods x {cfg.seeds} seeds x {cfg.budget} queries",
             "", f"Supernet: {cfg.supernet}; objective: val_accuracy with the shared weights "
             "(BN recalibrated per cell); FLOPs of the stand-alone network (M).", "",
             "| max FLOPs (M) | method | best val_accuracy | FLOPs of the best (M) | errors |", "|---|---|---|---|---|"]
    for limit in cfg.max_flops:
        for method in cfg.methods:
            mine = [r for r in rows if r["method"] == method and r.get("max_flops") == limit]
            best, flops = [], []
            for seed in sorted({r["seed"] for r in mine}):
                ok = [r for r in mine if r["seed"] == seed and r.get("error") is None and r.get("val_accuracy") is not None]
                if ok:
                    top = max(ok, key=lambda r: r["val_accuracy"])
                    best.append(top["val_accuracy"])
                    flops.append(top["flops"])
            errors = sum(r.get("error") is not None for r in mine)
            shown = "-" if not best else f"{np.mean(best):.2f} ± {np.std(best):.2f}"
            lines.append(f"| {'none' if limit is None else f'{limit:g}'} | {method} | {shown} | "
                         f"{'-' if not flops else f'{np.mean(flops):.3f}'} | {errors} |")
    return "\n".join(lines) + "\n"
