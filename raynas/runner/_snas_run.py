"""`raynas snas`: SNAS searches under several resource-constraint levels and seeds, one Tune experiment.

One Tune trial per (level, seed), each a :func:`raynas.trainables.snas.snas_trainable` that
checkpoints after every epoch, so ``raynas resume DIR`` (or ``--resume``) continues a sweep
whose driver died. The results go to ``DIR/snas.parquet`` (one row per trial: ``level``,
``lambda``, ``seed``, ``genotype`` as JSON, ``params`` and ``flops`` in millions,
``search_val_accuracy``, ``child_val_accuracy``, ``epochs``, ``error``) and a genotype file
per trial, ``DIR/genotypes/<level>_seed<seed>.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from raynas._errors import RaynasError, check_positive
from raynas.runner._compare import (
    EXPERIMENT_FILE,
    _init_ray,
    read_definition,
    stored_definition,
)
from raynas.runner._output import check_output_folder, write_definition

KIND = "snas"
RESULTS_FILE = "snas.parquet"
COLUMNS = {"level": pa.string(), "lambda": pa.float64(), "seed": pa.int64(), "genotype": pa.string(),
           "params": pa.float64(), "flops": pa.float64(), "search_val_accuracy": pa.float64(),
           "child_val_accuracy": pa.float64(), "epochs": pa.int64(), "error": pa.string()}


@dataclass
class SNASRunConfig:
    """A sweep of SNAS searches: every level x seed, with the settings of ``options``."""

    space: str = "nasbench201"
    dataset: str = "digits"
    data: str | None = None
    levels: list[str] = field(default_factory=lambda: ["mild", "moderate", "aggressive"])
    seeds: int = 1
    first_seed: int = 0
    image_size: int = 8
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        from raynas.trainables.snas import LEVELS

        check_positive("seeds", self.seeds)
        unknown = [lv for lv in self.levels if lv not in LEVELS and not _is_number(lv)]
        if unknown or not self.levels:
            raise RaynasError(f"unknown --levels {','.join(unknown) or '(none)'}: give {', '.join(LEVELS)} or numbers "
                              "(an explicit lambda)")
        self.base()  # checks space and option names and values

    def base(self):
        from raynas.trainables.snas import SNASConfig

        names = {f.name for f in dataclasses.fields(SNASConfig)} - {"space", "level", "lam", "seed"}
        bad = sorted(set(self.options) - names)
        if bad:
            raise RaynasError(f"SNAS has no option {', '.join(bad)}; options: {', '.join(sorted(names))}")
        try:
            return SNASConfig(space=self.space, **self.options)
        except (TypeError, ValueError) as exc:
            raise RaynasError(f"bad SNAS option: {exc}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _grid(cfg: SNASRunConfig) -> list[dict[str, Any]]:
    out = []
    for level in cfg.levels:
        for seed in range(cfg.first_seed, cfg.first_seed + cfg.seeds):
            trial = {"seed": seed}
            trial.update({"level": None, "lam": float(level)} if _is_number(level) else {"level": level})
            out.append(trial)
    return out


def _splits(cfg: SNASRunConfig, seed: int = 0):
    from raynas.runner._train_run import dataset_splits

    return dataset_splits(cfg.dataset, cfg.data, seed, cfg.image_size)


def run_snas(cfg: SNASRunConfig, out: str | os.PathLike, resume: bool = False, progress: bool = True) -> Path:
    """Run (or continue) the sweep into folder ``out``; returns the path of ``snas.parquet``."""
    out = check_output_folder(out)
    stored = stored_definition(out, cfg, resume, load_snas_config, "sweep")
    if stored is not None:
        return _run(stored, out, progress)
    cfg.validate()
    _splits(cfg)  # a missing dataset fails before anything is written
    write_definition(out, EXPERIMENT_FILE, {"kind": KIND, **asdict(cfg)})
    return _run(cfg, out, progress)


def load_snas_config(out: str | os.PathLike) -> SNASRunConfig:
    data = read_definition(out)
    if data.pop("kind", None) != KIND:
        raise RaynasError(f"{out} does not hold a `raynas snas` sweep")
    return SNASRunConfig(**data)


def resume_snas(out: str | os.PathLike, progress: bool = True) -> Path:
    out = Path(out).resolve()
    return _run(load_snas_config(out), out, progress)


def _run(cfg: SNASRunConfig, out: Path, progress: bool) -> Path:
    import ray
    from ray import tune

    from raynas.runner._tune_state import restorable
    from raynas.trainables.snas import snas_trainable

    cfg.validate()
    base = cfg.base()
    _init_ray()
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    trainable = tune.with_resources(
        tune.with_parameters(snas_trainable, data=ray.put(_splits(cfg)), base=base), {"cpu": 1})
    folder = out / "tune"
    if restorable(folder, "the SNAS sweep", "its searches start again"):
        tuner = tune.Tuner.restore(str(folder), trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, param_space={"trial": tune.grid_search(_grid(cfg))},
            tune_config=tune.TuneConfig(trial_dirname_creator=_dirname),
            run_config=tune.RunConfig(name="tune", storage_path=str(out), verbose=1 if progress else 0,
                                      failure_config=tune.FailureConfig(max_failures=2)),
        )
    grid = tuner.fit()
    rows = []
    (out / "genotypes").mkdir(exist_ok=True)
    for result in grid:
        trial = result.config.get("trial", result.config)
        m = result.metrics or {}
        level = trial["level"] if trial.get("level") is not None else str(trial["lam"])
        row = {"level": level, "lambda": m.get("lambda"), "seed": trial["seed"], "genotype": m.get("genotype"),
               "params": m.get("params"), "flops": m.get("flops"),
               "search_val_accuracy": m.get("search_val_accuracy"), "child_val_accuracy": m.get("child_val_accuracy"),
               "epochs": m.get("epoch"), "error": None if result.error is None else str(result.error).splitlines()[-1]}
        if row["genotype"] is None and row["error"] is None:
            row["error"] = "the search stopped before its last epoch"
        rows.append(row)
        if row["genotype"] is not None:
            (out / "genotypes" / f"{level}_seed{trial['seed']}.json").write_text(json.dumps(
                {"space": cfg.space, "genotype": json.loads(row["genotype"]), "level": level, "lambda": row["lambda"],
                 "seed": trial["seed"], "params": row["params"], "flops": row["flops"]}, indent=2))
    order = {lv: i for i, lv in enumerate(cfg.levels)}
    rows.sort(key=lambda r: (order.get(r["level"], len(order)), r["seed"]))
    table = pa.table({c: pa.array([r[c] for r in rows], type=t) for c, t in COLUMNS.items()})
    path = out / RESULTS_FILE
    pq.write_table(table, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return path


def read_genotype_file(path: str | os.PathLike) -> tuple[Any, Any]:
    """The space and the cell of a genotype file, checked (``raynas train --genotype`` reads it).

    ``genotype`` is, for NAS-Bench-201, the list of six op names; for DARTS the JSON form of a
    :class:`~raynas.spaces._darts_nodes.NodeGenotype` (what ``raynas snas --space darts``
    writes: per cell and node, its ``[op, input]`` edges) or a 2-input genotype in DARTS's
    notation (a string). Anything else is one clear error naming the file.
    """
    from raynas._errors import InvalidArchitectureError
    from raynas.spaces import get_space
    from raynas.spaces._darts_nodes import nodes_from_json

    try:
        saved = json.loads(Path(path).read_text())
        space_name, cell = saved["space"], saved["genotype"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RaynasError(f"{path} is not a cell file of `raynas snas` ({type(exc).__name__})") from None
    sp = get_space(space_name)
    try:
        if sp.name == "darts" and isinstance(cell, dict):
            return sp, nodes_from_json(cell)
        if isinstance(cell, str):
            return sp, sp.from_string(cell)
        cell = tuple(cell) if isinstance(cell, list) else cell
        sp.validate(cell)
    except InvalidArchitectureError as exc:
        raise InvalidArchitectureError(f"{path}: {exc}") from None
    return sp, cell


def _dirname(trial) -> str:
    t = trial.config.get("trial", {})
    level = t.get("level") or f"lam{t.get('lam')}"
    return f"{level}_seed{t.get('seed')}_{trial.trial_id}"
