"""`raynas compare` / `raynas resume`: many studies (method x seed) as one Ray Tune experiment.

Each Tune trial is a whole study on the simulated backend (one CPU, plus GPUs for a searcher
that says it wants one, ``ArchSearcher.wants_gpu``: see :func:`study_resources`). Each study
keeps its own checkpoints in ``DIR/studies/<study>/`` (:mod:`raynas.runner._study`); `resume`
restores the experiment with ``Tuner.restore``, finished studies are kept and unfinished ones go
on from their newest readable checkpoint. The driver gathers every study's rows into
``results.parquet``; a study that failed or stopped short is recorded as such, never at the
expense of the others.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from raynas._errors import RaynasError, UnknownNameError, check_positive
from raynas._state import dump_state
from raynas._storage import RemotePath, check_remote_folder, is_uri, shown, upload_tree
from raynas.benchmarks import TabularBenchmark, check_dataset, default_mode, get_spec, load
from raynas.runner._output import experiment_folder, write_definition
from raynas.runner._simulator import SimState
from raynas.runner._study import (
    SEARCHER_FILE,
    StudySpec,
    newest_checkpoint,
    shared_payloads,
    study_trainable,
)
from raynas.runner._tune_state import restorable
from raynas.searchers import check_options, searcher_class, searcher_names
from raynas.trainables.evaluator import Evaluator, TabularEvaluator

EXPERIMENT_FILE = "experiment.json"
BACKENDS = ("sim", "tune")
RESULTS_FILE = "results.parquet"
#: Every study's checkpoints and final searcher state: ``DIR/studies/<method>_seed<seed>/``.
STUDIES_DIR = "studies"
#: Restarts of a study whose process or node was lost; it goes on from its newest checkpoint.
MAX_FAILURES = 2
log = logging.getLogger("raynas")


class ExperimentExistsError(RaynasError, FileExistsError):
    """The output folder already holds an experiment."""


class NotAnExperimentError(RaynasError, FileNotFoundError):
    """A folder holds no (readable) raynas experiment definition."""


@dataclass
class CompareConfig:
    """Everything that defines a tabular experiment (``compare`` and ``run``); stored as ``DIR/experiment.json``.

    One definition serves both backends. ``backend="sim"``: each study (method x seed) is one Tune
    trial on the simulated asynchronous backend. ``backend="tune"``: each study is a Tune
    experiment with one trial per query (the searcher under ``ConcurrencyLimiter``), the path
    real training and supernet evaluation take, with ``cpus_per_trial``/``gpus_per_trial``.
    ``gpus_per_study`` (``"auto"`` or a number) is what :func:`study_resources` gives each
    simulated study of a searcher with a neural controller.
    """

    benchmark: str
    methods: list[str]
    seeds: int
    budget: int
    dataset: str | None = None
    data: str | None = None
    metric: str | None = None
    workers: int = 1
    fidelity: int | None = None
    max_cost: dict[str, float] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoint_every: int = 25
    first_seed: int = 0
    name: str = "compare"
    backend: str = "sim"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    gpus_per_study: float | str = "auto"

    def validate(self) -> None:
        """Check every name and number before anything starts."""
        spec = get_spec(self.benchmark)
        self.dataset = check_dataset(spec, self.dataset)
        check_positive("budget", self.budget)
        check_positive("seeds", self.seeds)
        check_positive("workers", self.workers)
        check_positive("checkpoint_every", self.checkpoint_every)
        check_positive("cpus_per_trial", self.cpus_per_trial)
        if self.gpus_per_trial < 0:
            raise ValueError(f"gpus_per_trial must not be negative, got {self.gpus_per_trial}")
        if self.gpus_per_study != "auto" and (
            isinstance(self.gpus_per_study, (bool, str)) or self.gpus_per_study < 0
        ):
            raise ValueError(f"gpus_per_study must be a number >= 0 or 'auto', got {self.gpus_per_study!r}")
        if self.backend not in BACKENDS:
            raise UnknownNameError("backend", self.backend, BACKENDS)
        check_methods(self.methods, self.options)
        for name, limit in self.max_cost.items():
            check_positive(f"max_{name}", limit)

    def studies(self, metric: str, mode: str) -> list[StudySpec]:
        return [
            StudySpec(
                method=m, seed=self.first_seed + s, metric=metric, mode=mode, budget=self.budget,
                workers=self.workers, fidelity=self.fidelity, max_cost=dict(self.max_cost),
                options=dict(self.options.get(m, {})), checkpoint_every=self.checkpoint_every,
            )
            for m in self.methods
            for s in range(self.seeds)
        ]


def check_methods(methods: list[str], options: dict[str, dict[str, Any]]) -> None:
    """Refuse an empty, repeated or unknown method, and options of a method not run or ill-typed."""
    if not methods:
        raise ValueError("give at least one method, e.g. --methods dnas,evolution,random")
    valid = searcher_names()
    for method in methods:
        if method not in valid:
            raise UnknownNameError("method", method, valid)
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods are listed twice: {methods}")
    for method, opts in options.items():
        if method not in methods:
            raise ValueError(f"options are given for {method!r}, which is not among the methods run "
                             f"({', '.join(methods)})")
        check_options(method, opts)


def resolve_metric(bench: TabularBenchmark, metric: str | None) -> str:
    """The objective: ``metric``, else ``val_accuracy``, else ``test_accuracy`` with a warning."""
    if metric is not None:
        if metric not in bench.metrics:
            raise UnknownNameError(f"metric of {bench.name}", metric, bench.metrics)
        return metric
    if "val_accuracy" in bench.metrics:
        return "val_accuracy"
    warnings.warn(
        f"{bench.name} has no val_accuracy: test_accuracy drives the search (results are "
        "optimistic; pass --metric to choose)",
        stacklevel=2,
    )
    return "test_accuracy"


def study_resources(config: dict[str, Any], gpus_per_study: float | str = "auto"):
    """The Tune resources of one study: one CPU, plus GPUs where its searcher wants one.

    Only searchers with a neural controller (``ArchSearcher.wants_gpu``: dnas, nao, seminas) get
    GPUs. ``"auto"`` gives such a study one GPU when the cluster has GPUs at that moment, else
    none; a number asks for that many GPUs whatever the cluster holds now, so that an
    autoscaling cluster launches GPU nodes for the studies that wait on them.
    """
    from ray import tune

    bundle = {"CPU": 1.0}
    if searcher_class(config["study"]["method"]).wants_gpu:
        gpus = _cluster_gpus_share() if gpus_per_study == "auto" else float(gpus_per_study)
        if gpus > 0:
            bundle["GPU"] = gpus
    return tune.PlacementGroupFactory([bundle])


def _cluster_gpus_share() -> float:
    import ray

    gpus = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else 0
    return 1.0 if gpus else 0.0


def _trainable(evaluator: Evaluator, out: Path | RemotePath, gpus_per_study: float | str = "auto",
               shared: dict[str, Any] | None = None):
    from ray import tune

    trainable = tune.with_parameters(study_trainable, bench=evaluator, store=str(out / STUDIES_DIR),
                                     shared=shared or {})
    return tune.with_resources(trainable, partial(study_resources, gpus_per_study=gpus_per_study))


def _init_ray() -> None:
    import ray

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Studies checkpoint often on purpose (resume loses at most a few queries); don't warn about it.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not ray.is_initialized():
        ray.init(
            address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False,
            configure_logging=False,
        )


def compare(
    config: CompareConfig,
    out: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    verbose: int = 0,
) -> Path:
    """Run (or, with ``resume``, continue) a comparison into folder ``out``; returns the results path.

    Every check (output folder, names, numbers, benchmark data, metric) runs before anything is
    written, so a failed start leaves no experiment behind and the corrected retry just works.
    """
    shown_out = shown(out)
    out, root = experiment_folder(out, (EXPERIMENT_FILE,))
    stored = check_resume(config, out, resume, shown_out)
    if stored is not None:
        if not resume:
            raise ExperimentExistsError(
                f"{shown_out} already holds this experiment; pass --resume (or run `raynas resume "
                f"{shown_out}`) to continue it, or choose another --out"
            )
        return _run(stored, out, restore=True, progress=progress, verbose=verbose, root=root)
    if root.exists() and any(root.iterdir()):
        raise ExperimentExistsError(f"{shown_out} exists and is not a raynas experiment; choose another --out")
    config = _normalised(config)
    config.validate()
    bench = load(config.benchmark, path=config.data, dataset=config.dataset)
    if config.metric is not None:  # the default is resolved (with its warning) once, by _run
        resolve_metric(bench, config.metric)
    write_definition(out, EXPERIMENT_FILE, {"kind": "compare", **asdict(config)})
    push(out, root, EXPERIMENT_FILE)
    return _run(config, out, restore=False, progress=progress, verbose=verbose, bench=bench, root=root)


def push(local: Path, root: Path | RemotePath, *names: str) -> None:
    """Upload the files ``names`` of ``local`` (all of them without names) to ``root``, if remote."""
    if isinstance(root, RemotePath):
        if names:
            for name in names:
                (root / name).write_bytes((local / name).read_bytes())
        else:
            upload_tree(local, root)


def check_resume(config: CompareConfig, out: Path, resume: bool = True, shown_out: str | None = None
                 ) -> CompareConfig | None:
    """The experiment stored in ``out`` (None if none), once it is clear that ``config`` asks for that one."""
    if not (out / EXPERIMENT_FILE).exists():
        return None
    stored = load_config(out)
    check_same(shown_out or out, asdict(stored), asdict(_normalised(config)), resume)
    return stored


def check_same(out: Path | str, stored: dict[str, Any], asked: dict[str, Any], resume: bool = True) -> None:
    """Refuse to go on with the experiment in ``out`` under other settings; the message names them."""
    differ = [k for k in stored if stored[k] != asked.get(k)]
    if differ:
        def show(values: dict[str, Any]) -> str:
            return ", ".join(f"{k}={_show(values.get(k))}" for k in differ)

        raise ExperimentExistsError(
            f"{out} holds an experiment with {show(stored)}; you asked {show(asked)}: use another --out "
            f"or the same arguments{'' if resume else ' (with --resume to continue it)'}"
        )


def stored_definition(out: Path, cfg: Any, resume: bool, load, what: str = "experiment") -> Any | None:
    """The definition stored in ``out`` when it is the one ``cfg`` asks for (None when ``out`` is empty).

    Refuses (naming the differences) another definition, the same one without ``resume``, and a
    folder that holds something else. ``load(out)`` reads the stored definition (a dataclass);
    ``what`` names the run in messages ("sweep", "run").
    """
    if (out / EXPERIMENT_FILE).exists():
        stored = load(out)
        check_same(out, asdict(stored), asdict(cfg), resume)
        if not resume:
            raise ExperimentExistsError(f"{out} already holds this {what}; pass --resume (or run `raynas resume "
                                        f"{out}`) to continue it, or choose another --out")
        return stored
    if out.exists() and any(out.iterdir()):
        raise ExperimentExistsError(f"{out} exists and is not a raynas experiment; choose another --out")
    return None


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return json.dumps(value) if isinstance(value, dict) else str(value)


def _normalised(config: CompareConfig) -> CompareConfig:
    cfg = CompareConfig(**asdict(config))
    if cfg.data is not None and not is_uri(cfg.data):
        cfg.data = str(Path(cfg.data).resolve())
    cfg.dataset = check_dataset(get_spec(cfg.benchmark), cfg.dataset)
    return cfg


def read_definition(out: str | os.PathLike) -> dict[str, Any]:
    """The experiment definition ``out/experiment.json``, or a clear error when ``out`` holds none.

    ``out`` may be a storage URI (``s3://bucket/x``).
    """
    path = (check_remote_folder(os.fspath(out), "") if is_uri(out) else Path(out)) / EXPERIMENT_FILE
    if not path.is_file():
        raise NotAnExperimentError(
            f"{shown(out)} is not a raynas experiment folder (it has no {EXPERIMENT_FILE}); give the --out "
            "folder of a `raynas compare`, `run` or `demo`"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotAnExperimentError(f"{path} is unreadable ({type(exc).__name__}); it is not a raynas "
                                   "experiment definition") from None
    if not isinstance(data, dict):
        raise NotAnExperimentError(f"{path} is not a raynas experiment definition (not a JSON object)")
    return data


def load_config(out: str | os.PathLike) -> CompareConfig:
    data = read_definition(out)
    kind = data.pop("kind", "compare")
    if kind == "tune-run":  # written before the Tune path shared this definition
        method = data.pop("method")
        data["methods"], data["first_seed"] = [method], data.pop("seed")
        data["options"] = {method: data["options"]} if data.get("options") else {}
        data.update(seeds=1, backend="tune", name=data.get("name", "run"))
    elif kind != "compare":
        raise RaynasError(f"{out} holds a {kind!r} experiment, not a comparison")
    try:
        return CompareConfig(**data)
    except TypeError as exc:
        raise NotAnExperimentError(f"{Path(out) / EXPERIMENT_FILE} is not a raynas experiment definition "
                                   f"({exc})") from None


def resume(out: str | os.PathLike, progress: bool = True, verbose: int = 0) -> Path:
    """Continue an interrupted comparison in ``out`` (finished studies are not rerun).

    ``out`` may be a storage URI: the experiment goes on there, from any machine.
    """
    config = load_config(out)
    local, root = experiment_folder(out, (EXPERIMENT_FILE,)) if is_uri(out) else (Path(out).resolve(),) * 2
    return _run(config, local, restore=True, progress=progress, verbose=verbose, root=root)


def _run(config: CompareConfig, out: Path, restore: bool, progress: bool, verbose: int,
         bench: TabularBenchmark | None = None, root: Path | RemotePath | None = None) -> Path:
    """Run the studies; the driver writes into ``out``, Tune and the studies into ``root`` (default: ``out``)."""
    root = out if root is None else root
    if config.backend == "tune":
        from raynas.runner._tune_run import run_studies

        path = run_studies(config, out, restore=restore, progress=progress, verbose=verbose, bench=bench, root=root)
        push(out, root)
        return path
    from ray import tune

    from raynas.runner._progress import StudyProgress
    from raynas.runner._study import trial_dirname

    if restore and isinstance(root, Path) and any(out.glob("tune/*/checkpoint_*/sim.pkl")) and not any(out.glob(f"{STUDIES_DIR}/*/checkpoint-*")):
        raise RaynasError(f"{out} was written by an older raynas, whose study checkpoints are pickles; they are "
                          "not read, because unpickling can run code: run the experiment again in a new folder")
    if bench is None:
        bench = load(config.benchmark, path=config.data, dataset=config.dataset)
    metric = resolve_metric(bench, config.metric)
    evaluator = TabularEvaluator(bench)
    mode = default_mode(metric)
    studies = config.studies(metric, mode)
    _init_ray()
    # Auto loggers are off for speed, so Tune's result grid warns that it found no result.json.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    callback = StudyProgress(len(studies), enabled=progress)
    run_config = tune.RunConfig(
        name="tune",
        storage_path=str(root),
        verbose=verbose,
        callbacks=[callback],
        failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
    )
    tune_dir = root / "tune"
    # State the studies of a method share (arch2vec's embeddings), loaded once here and shipped to
    # the workers with the evaluator through the object store.
    shared = shared_payloads({m: config.options.get(m, {}) for m in config.methods}, evaluator)
    if restore and restorable(tune_dir, "the Tune experiment", "a fresh one runs every study on from its own "
                                                                 "checkpoints"):
        trainable = _trainable(evaluator, root, config.gpus_per_study, shared)
        tuner = tune.Tuner.restore(str(tune_dir), trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            _trainable(evaluator, root, config.gpus_per_study, shared),
            # Seed by seed, every method in turn: the first seeds of all methods finish first, and
            # slow methods (neural controllers) are spread over the run instead of all at its end.
            param_space={"study": tune.grid_search([s.to_dict() for s in sorted(studies, key=lambda s: s.seed)])},
            tune_config=tune.TuneConfig(reuse_actors=True, trial_dirname_creator=trial_dirname),
            run_config=run_config,
        )
    grid = tuner.fit()
    callback.close()
    path = collect(grid, studies, config, evaluator, metric, out, root)
    write_report(out, config, evaluator, metric)
    push(out, root)
    return path


def collect(grid, studies: Sequence[StudySpec], config: CompareConfig, evaluator: Evaluator, metric: str,
            out: Path, root: Path | RemotePath | None = None) -> Path:
    """Gather every study's rows into ``results.parquet`` and its state into ``studies/<study>/searcher.pt``.

    Rows come from each study's newest readable checkpoint, for every study of the experiment,
    whether or not Tune's result grid holds it. A study that failed, or whose rows stop short of
    its budget (e.g. its last checkpoint is unreadable), gets a row saying so, a warning and its
    entry in ``studies.json``; the other studies are written as usual.
    """
    rows: list[dict[str, Any]] = []
    status: dict[str, dict[str, Any]] = {}
    results = {StudySpec(**r.config["study"]).name: r for r in grid}
    for spec in studies:
        result = results.get(spec.name)
        error = None if result is None else result.error
        metrics = (result.metrics if result is not None else None) or {}
        saved, notes = newest_checkpoint((out if root is None else root) / STUDIES_DIR / spec.name)
        notes = [n for n in (metrics.get("recovery"),) if n] + notes
        sim = saved["sim"] if saved else SimState()
        if saved:
            dump_state(saved["searcher"], out / STUDIES_DIR / spec.name / SEARCHER_FILE)
        problem = None if error is None else f"study failed: {error}"
        if problem is None and not sim.finished:
            problem = (f"study incomplete: {len(sim.rows)} of {spec.budget} queries have a readable checkpoint"
                       + ("" if result is not None else " (Tune's experiment did not run it)"))
        status[spec.name] = {
            "method": spec.method, "seed": spec.seed, "node": metrics.get("node"),
            "queries": len(sim.rows), "complete": problem is None, "recovery": "; ".join(notes) or None,
            "error": None if error is None else str(error),
        }
        for note in notes:
            log.warning(note)
        rows.extend(_study_rows(config, spec, metric, sim.rows))
        if problem is not None:
            log.warning("%s: %s", spec.name, problem)
            rows.append({"experiment": config.name, "method": spec.method, "seed": spec.seed,
                         "query": len(sim.rows), "error": problem})
    rows.sort(key=lambda r: (config.methods.index(r["method"]), r["seed"], r["query"]))
    (out / "studies.json").write_text(json.dumps(status, indent=2))
    path = out / RESULTS_FILE
    write_rows(rows, path, evaluator.metrics)
    return path


def _study_rows(config: CompareConfig, spec: StudySpec, metric: str, rows: Sequence[dict]) -> list[dict]:
    out = [{"experiment": config.name, "method": spec.method, "seed": spec.seed, **r} for r in rows]
    return add_incumbent(out, metric, spec.mode)


def add_incumbent(rows: list[dict[str, Any]], metric: str, mode: str) -> list[dict[str, Any]]:
    """Set each row's ``incumbent``: the best ``metric`` of the successful rows so far, in order."""
    sign = 1 if mode == "max" else -1
    best = None
    for r in rows:
        value = r.get(metric) if r.get("error") is None else None
        if value is not None and (best is None or sign * value > sign * best):
            best = value
        r["incumbent"] = best
    return rows


def write_rows(rows: list[dict[str, Any]], path: Path, metrics: Sequence[str]) -> None:
    columns = ["experiment", "method", "seed", "query", "suggestion", "time", "key", "config",
               *metrics, "incumbent", "error"]
    data = {c: [r.get(c) for r in rows] for c in columns}
    types = {"experiment": pa.string(), "method": pa.string(), "seed": pa.int64(),
             "query": pa.int64(), "suggestion": pa.int64(), "time": pa.float64(),
             "key": pa.string(), "config": pa.string(), "incumbent": pa.float64(),
             "error": pa.string(), **{m: pa.float64() for m in metrics}}
    table = pa.table({c: pa.array(data[c], type=types[c]) for c in columns})
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def write_report(out: Path, config: CompareConfig, evaluator: TabularEvaluator, metric: str) -> str:
    """Write the report files (:func:`raynas.report.write_report`); return ``summary.md``'s text."""
    from raynas import report

    try:
        optimum = evaluator.optimum(metric, config.fidelity, config.max_cost or None)
    except RaynasError as exc:  # e.g. a fidelity the table lacks: every trial failed; report that
        warnings.warn(f"no optimum for the regret columns: {exc}", stacklevel=2)
        optimum = None
    heading = (f"{config.benchmark} / {config.dataset}: {len(config.methods)} methods x "
               f"{config.seeds} seeds x {config.budget} queries"
               + (f", limits {config.max_cost}" if config.max_cost else ""))
    return report.write_report(out, report.Experiment(
        heading, metric, optimum, default_mode(metric), "sim" if config.backend == "sim" else "wall",
        config.methods, config.benchmark, config.dataset, dict(config.max_cost), config.workers))
