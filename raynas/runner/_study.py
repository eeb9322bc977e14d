"""One study = one method x one seed with one evaluator, run on the simulated backend.

A study runs inside a Ray Tune function trainable, so that `raynas compare` spreads whole
studies over a cluster. Every ``checkpoint_every`` queries it writes a checkpoint of its own,
``DIR/studies/<method>_seed<seed>/checkpoint-<queries>.pt``: the searcher state and the simulator
state as plain data (:mod:`raynas._state`, no pickle). A started or restarted trial continues
from its study's newest readable checkpoint, whatever Tune's experiment state recorded (Tune
saves that state only now and then, so after a kill it can lag the studies), and an unreadable
checkpoint is moved aside with a note, the one before it taking its place.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ray import tune

from raynas._state import StateFileError, dump_state, load_state
from raynas._storage import as_path
from raynas.benchmarks import TabularBenchmark
from raynas.runner._simulator import SimState, simulate
from raynas.searchers import ArchSearcher, get_searcher
from raynas.trainables.evaluator import Evaluator, TabularEvaluator, as_evaluator

#: The final searcher state of each study, kept beside its checkpoints for `raynas explain`.
SEARCHER_FILE = "searcher.pt"
#: Checkpoints kept per study: the newest, and the one before it in case the newest is unreadable.
KEEP = 2
log = logging.getLogger("raynas")


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
    #: Appended to the name when one experiment runs a method and seed more than once (e.g. per limit).
    label: str = ""

    @property
    def name(self) -> str:
        return f"{self.method}_seed{self.seed}{self.label}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trial_dirname(trial) -> str:
    """Tune's folder of a study's trial: ``<method>_seed<seed>``, not Tune's 150-character default."""
    study = trial.config.get("study", {})
    return f"{study.get('method', 'study')}_seed{study.get('seed', trial.trial_id)}"


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


def _stateful(bench: Any) -> bool:
    """Whether an evaluator changes as it evaluates (e.g. ENAS's shared weights) and keeps its
    state in the study's checkpoints: it has ``get_state()`` and ``set_state(state)``."""
    return callable(getattr(bench, "get_state", None)) and callable(getattr(bench, "set_state", None))


def save_study(path: str | Path, searcher: ArchSearcher, state: SimState, bench: Any = None) -> None:
    """Write one checkpoint file atomically: the searcher state, the simulator state and, for a
    stateful evaluator (:func:`_stateful`), the evaluator's state."""
    saved = {"searcher": searcher.get_state(), "sim": asdict(state)}
    if _stateful(bench):
        saved["evaluator"] = bench.get_state()
    dump_state(saved, path)


def load_study(path: str | Path, spec: StudySpec, bench: Evaluator | TabularBenchmark) -> tuple[ArchSearcher, SimState]:
    """The searcher and simulator state of a checkpoint written by :func:`save_study` (a stateful
    evaluator's state is put back into ``bench``)."""
    return _restore(read_checkpoint(path), spec, bench)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``{"searcher": state dict, "sim": SimState}`` (plus ``"evaluator"`` where one was saved) of a
    checkpoint file; :class:`StateFileError` if unreadable."""
    saved = load_state(path)
    try:
        out = {"searcher": dict(saved["searcher"]), "sim": SimState(**saved["sim"])}
        if "evaluator" in saved:
            out["evaluator"] = dict(saved["evaluator"])
        return out
    except (KeyError, TypeError, ValueError) as exc:
        raise StateFileError(f"{path} is not a study checkpoint ({type(exc).__name__}: {exc})") from None


def _restore(saved: dict[str, Any], spec: StudySpec, bench) -> tuple[ArchSearcher, SimState]:
    if _stateful(bench):
        if "evaluator" not in saved:
            raise StateFileError(
                f"study {spec.name}: its checkpoint holds no state of the evaluator {type(bench).__name__}, "
                "which changes as it evaluates; continue it with the evaluator it ran with, or start afresh"
            )
        bench.set_state(saved["evaluator"])
    searcher = build_searcher(spec, bench)
    searcher.set_state(saved["searcher"])
    return searcher, saved["sim"]


def checkpoints(folder: Path) -> list[Path]:
    """A study's checkpoint files, oldest first (the name holds the number of queries)."""
    return sorted(folder.glob("checkpoint-*.pt"))


def write_checkpoint(folder: Path, searcher: ArchSearcher, state: SimState, bench: Any = None) -> None:
    """Save a checkpoint into a study's folder and drop all but the :data:`KEEP` newest."""
    save_study(folder / f"checkpoint-{len(state.rows):06d}.pt", searcher, state, bench)
    for old in checkpoints(folder)[:-KEEP]:
        old.unlink(missing_ok=True)


def newest_checkpoint(folder: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The newest readable checkpoint of a study (None if none is) and a note per unreadable one.

    An unreadable checkpoint (cut short, or not a raynas state) is renamed
    ``<name>.unreadable``, kept for a post-mortem, so that the one before it is the newest. One
    that is gone by the time it is read (a process of a killed driver or lost node, still running
    the study, dropped it for a newer one) is passed over: the study goes on from an older one.
    """
    notes = []
    for path in reversed(checkpoints(folder)):
        try:
            return read_checkpoint(path), notes
        except FileNotFoundError:
            continue
        except StateFileError as exc:
            aside = path.with_name(path.name + ".unreadable")
            try:
                path.replace(aside)
            except FileNotFoundError:
                continue
            notes.append(f"{folder.name}: {exc}; moved aside as {aside.name}")
            log.warning(notes[-1])
    return None, notes


def shared_payloads(methods_options: dict[str, dict[str, Any]], bench: Evaluator | TabularBenchmark) -> dict:
    """``{method: payload}`` of the strategies that share state between studies (loaded here, once).

    Args:
        methods_options: Each method run, with its options (one payload per method).
        bench: The evaluator, for its space.
    """
    from raynas.searchers import searcher_class

    space = as_evaluator(bench).space
    out = {}
    for method, options in methods_options.items():
        payload = searcher_class(method).shared_payload(space, dict(options))
        if payload is not None:
            out[method] = payload
    return out


def study_trainable(config: dict[str, Any], bench: Evaluator | TabularBenchmark, store: str,
                    shared: dict[str, Any] | None = None) -> None:
    """Ray Tune function trainable running one study; continues from its newest readable checkpoint.

    Args:
        config: ``{"study": StudySpec.to_dict()}``.
        bench: The evaluator (or tabular benchmark) that plays the trainable.
        store: The folder of the studies' own checkpoints (``DIR/studies``): a path every node
            reaches, or a storage URI (:mod:`raynas._storage`).
        shared: :func:`shared_payloads`, put in place before the study's searcher is built (e.g.
            arch2vec's embeddings, loaded once on the driver instead of once per node).
    """
    spec = StudySpec(**config["study"])
    if shared and spec.method in shared:
        from raynas.searchers import searcher_class

        searcher_class(spec.method).install_payload(shared[spec.method])
    folder = as_path(store) / spec.name
    saved, notes = newest_checkpoint(folder)
    if notes:
        done = "no readable checkpoint is left: the study starts again from its seed" if saved is None else (
            f"it continues from query {len(saved['sim'].rows)}")
        notes.append(f"{spec.name}: {done}")
        log.warning(notes[-1])
    searcher, state = None, None
    if saved is not None:
        try:
            searcher, state = _restore(saved, spec, bench)
        except StateFileError as exc:  # e.g. written before its evaluator kept a state
            notes.append(f"{exc}: the study starts again from its seed")
            log.warning(notes[-1])
    info = {"resumed_from": len(state.rows) if state else 0, "recovery": "; ".join(notes) or None}
    if state is not None and state.finished:  # finished before the driver noticed: report it once more
        _report(spec, searcher, state, info)
        return

    def on_checkpoint(s: ArchSearcher, st: SimState) -> None:
        write_checkpoint(folder, s, st, bench)
        _report(spec, s, st, info)

    run_study(spec, bench, searcher, state, on_checkpoint)


def _report(spec: StudySpec, searcher: ArchSearcher, state: SimState, info: dict[str, Any]) -> None:
    import ray

    best = searcher.best()
    tune.report({
        "node": ray.get_runtime_context().get_node_id() if ray.is_initialized() else None,
        "method": spec.method,
        "seed": spec.seed,
        "queries": len(state.rows),
        "done": bool(state.finished),
        "best": None if best is None else (best["score"] if spec.mode == "max" else -best["score"]),
        **info,
    })
