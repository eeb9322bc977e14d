"""One study = one method x one seed with one evaluator, run on the simulated backend.

A study runs inside a Ray Tune function trainable, so that `raynas compare` spreads whole
studies over a cluster. Every ``checkpoint_every`` queries it reports a Tune checkpoint with the
searcher state and the simulator state; a restored trial continues exactly where it stopped.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

from ray import tune

from raynas.benchmarks import TabularBenchmark
from raynas.runner._simulator import SimState, simulate
from raynas.searchers import ArchSearcher, get_searcher
from raynas.trainables.evaluator import Evaluator, TabularEvaluator, as_evaluator

SEARCHER_FILE = "searcher.pkl"
SIM_FILE = "sim.pkl"


@dataclass(frozen=True)
class StudySpec:
    """What one study runs; plain data, stored in the Tune config."""

    method: str
    seed: int
    metric: str
    mode: str
    budget: int
    workers: int = 1
    fidelity: int | None = None
    max_cost: dict[str, float] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    checkpoint_every: int = 25

    @property
    def name(self) -> str:
        return f"{self.method}_seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_searcher(spec: StudySpec, bench: Evaluator | TabularBenchmark) -> ArchSearcher:
    """The study's searcher: the space, metric, seed, limits and candidates of a partial table."""
    evaluator = as_evaluator(bench)
    return get_searcher(
        spec.method,
        evaluator.space,
        metric=spec.metric,
        mode=spec.mode,
        seed=spec.seed,
        candidates=_candidates(evaluator),
        cost_fn=evaluator.cost if evaluator.cost_metrics else None,
        max_cost=dict(spec.max_cost) or None,
        **dict(spec.options),
    )


def _candidates(evaluator: Evaluator) -> dict | list | None:
    """A partial table's cells; a table's as ``key -> arch``, so the searcher hashes none again."""
    if not evaluator.partial:
        return None
    if isinstance(evaluator, TabularEvaluator):
        return dict(zip(evaluator.bench.keys, evaluator.bench.candidates()))
    return evaluator.candidates()


def run_study(
    spec: StudySpec,
    bench: Evaluator | TabularBenchmark,
    searcher: ArchSearcher | None = None,
    state: SimState | None = None,
    on_checkpoint=None,
) -> tuple[ArchSearcher, SimState]:
    """Run (or continue) a study; ``on_checkpoint(searcher, state)`` every few queries and at the end."""
    searcher = searcher or build_searcher(spec, bench)
    last = [len(state.rows) if state else 0]

    def on_step(st: SimState) -> None:
        if on_checkpoint is not None and len(st.rows) - last[0] >= spec.checkpoint_every:
            last[0] = len(st.rows)
            on_checkpoint(searcher, st)

    st = simulate(searcher, bench, spec.budget, spec.workers, spec.fidelity, state=state, on_step=on_step)
    if on_checkpoint is not None:
        on_checkpoint(searcher, st)
    return searcher, st


def save_study(folder: str, searcher: ArchSearcher, state: SimState) -> None:
    searcher.save(os.path.join(folder, SEARCHER_FILE))
    with open(os.path.join(folder, SIM_FILE), "wb") as fh:
        pickle.dump(asdict(state), fh)


def load_study(folder: str, spec: StudySpec, bench: Evaluator | TabularBenchmark) -> tuple[ArchSearcher, SimState]:
    searcher = build_searcher(spec, bench)
    searcher.restore(os.path.join(folder, SEARCHER_FILE))
    with open(os.path.join(folder, SIM_FILE), "rb") as fh:
        state = SimState(**pickle.load(fh))
    return searcher, state


def study_trainable(config: dict[str, Any], bench: Evaluator | TabularBenchmark) -> None:
    """Ray Tune function trainable running one study; resumes from its last checkpoint."""
    spec = StudySpec(**config["study"])
    searcher, state = None, None
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as folder:
            searcher, state = load_study(folder, spec, bench)
        if state.finished:  # finished before the driver noticed: report it once more
            _report(spec, searcher, state)
            return

    def on_checkpoint(s: ArchSearcher, st: SimState) -> None:
        _report(spec, s, st)

    run_study(spec, bench, searcher, state, on_checkpoint)


def _report(spec: StudySpec, searcher: ArchSearcher, state: SimState) -> None:
    import ray

    best = searcher.best()
    metrics = {
        "node": ray.get_runtime_context().get_node_id() if ray.is_initialized() else None,
        "method": spec.method,
        "seed": spec.seed,
        "queries": len(state.rows),
        "done": bool(state.finished),
        "best": None if best is None else (best["score"] if spec.mode == "max" else -best["score"]),
    }
    with tempfile.TemporaryDirectory() as folder:
        save_study(folder, searcher, state)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
