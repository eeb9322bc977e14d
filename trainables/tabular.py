"""The Ray Tune trainable that evaluates one architecture with an evaluator (e.g. a table lookup).

It goes through :func:`raynas.trainables.evaluator.evaluate_config`, as the simulated backend
does, so both paths produce identical results. The trainable gets the evaluator through
``tune.with_parameters`` (one copy per worker process via the object store, not one per trial).
"""

from __future__ import annotations

from typing import Any

from ray import tune

from raynas.benchmarks import TabularBenchmark
from raynas.trainables.evaluator import Evaluator, as_evaluator, evaluate_config


def tabular_trainable(
    config: dict[str, Any], bench: Evaluator | TabularBenchmark, fidelity: int | None = None
) -> None:
    """Ray Tune function trainable; use with ``tune.with_parameters(tabular_trainable, bench=...)``.

    ``bench`` is an :class:`~raynas.trainables.evaluator.Evaluator` or a table. Raises on a
    failed evaluation so that Tune marks the trial as errored and tells the searcher.
    """
    evaluator = as_evaluator(bench)
    result, error = evaluate_config(evaluator, config, fidelity)
    if error is not None:
        raise RuntimeError(error)
    result["sim_time"] = evaluator.eval_time(evaluator.space.from_config(config), fidelity)
    tune.report(result)
