"""Discrete-event simulation of W asynchronous workers evaluating on a tabular benchmark.

Time is an event heap keyed on ``(finish time, counter)``: events that fall at the same time
come out in the order they were queued. An evaluation occupies its worker for the evaluator's
``eval_time`` (a table's recorded training time, or its documented cost model,
:meth:`TabularBenchmark.eval_time`; one simulated second where the evaluator knows none). The
simulated clock never reads the wall clock, so a run is the same on every machine.

The whole simulator state (clock, heap, counters, rows) is plain data, so a study can be
checkpointed mid-way and resumed exactly.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ray.tune.search import Searcher

from raynas._errors import check_positive
from raynas.benchmarks import TabularBenchmark
from raynas.trainables.evaluator import Evaluator, as_evaluator, evaluate_config


@dataclass
class SimState:
    """Everything the simulation needs to continue exactly where it stopped."""

    clock: float = 0.0
    counter: int = 0  # trials started
    heap: list[tuple[float, int, str, dict, dict | None, str | None]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False  # the searcher said FINISHED, or the budget is spent


def simulate(
    searcher: Searcher,
    bench: Evaluator | TabularBenchmark,
    budget: int,
    workers: int = 1,
    fidelity: int | None = None,
    state: SimState | None = None,
    on_step: Callable[[SimState], None] | None = None,
    stop_after: int | None = None,
) -> SimState:
    """Run ``searcher`` against an evaluator for ``budget`` queries on ``workers`` simulated workers.

    Args:
        searcher: Any Ray Tune searcher whose configs ``bench.space.from_config`` understands.
        bench: The :class:`~raynas.trainables.evaluator.Evaluator` that plays the trainable, or a
            tabular benchmark (looked up through a ``TabularEvaluator``).
        budget: Number of queries (finished evaluations, failed ones included).
        workers: Simulated parallel workers.
        fidelity: Training budget to query (the benchmark's largest by default).
        state: A :class:`SimState` to resume from.
        on_step: Called after each finished query (e.g. to checkpoint).
        stop_after: Stop (resumably) once this many rows exist; for checkpoint tests.

    Returns:
        The final :class:`SimState`; ``state.rows`` has one dict per query in completion order
        with the query index, suggestion index, simulated start/finish time, cell key, config,
        every metric and the error message, if any.
    """
    check_positive("budget", budget)
    check_positive("workers", workers)
    st = state or SimState()
    evaluator = as_evaluator(bench)
    space = evaluator.space
    while len(st.rows) < budget and not (stop_after is not None and len(st.rows) >= stop_after):
        # Fill idle workers; never start more trials than the budget can finish.
        while not st.finished and len(st.heap) < workers and st.counter < budget:
            trial_id = f"sim_{st.counter:06d}"
            config = searcher.suggest(trial_id)
            if config == Searcher.FINISHED:
                st.finished = True
                break
            if config is None:  # nothing to propose until a running trial finishes
                break
            result, error = evaluate_config(evaluator, config, fidelity)
            duration = 0.0
            if error is None:
                seconds = evaluator.eval_time(space.from_config(config), fidelity)
                duration = 1.0 if seconds is None else seconds
            heapq.heappush(st.heap, (st.clock + duration, st.counter, trial_id, config, result, error))
            st.counter += 1
        if not st.heap:
            break
        end, index, trial_id, config, result, error = heapq.heappop(st.heap)
        st.clock = end
        searcher.on_trial_complete(trial_id, result=result, error=error is not None)
        row: dict[str, Any] = {
            "query": len(st.rows),
            "suggestion": index,
            "time": end,
            "key": result["key"] if result else _key_or_none(space, config),
            "config": json.dumps(config, sort_keys=True),
            "error": error,
        }
        if result:
            row.update({k: v for k, v in result.items() if k != "key"})
        st.rows.append(row)
        if on_step is not None:
            on_step(st)
    if len(st.rows) >= budget:
        st.finished = True
    return st


def _key_or_none(space, config: dict) -> str | None:
    try:
        return space.key(space.from_config(config))
    except Exception:  # an invalid config has no key; its error is in the row
        return None
