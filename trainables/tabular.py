"""Tabular lookup: the trainable that "trains" an architecture by querying a benchmark.

`evaluate` is shared by the simulated backend and the Ray Tune trainable, so both paths
produce identical results. The Tune trainable gets the benchmark through
``tune.with_parameters`` (one copy per worker process via the object store, not one per trial).
"""

from __future__ import annotations

from typing import Any

from ray import tune

from raynas.benchmarks import TabularBenchmark


def evaluate(
    bench: TabularBenchmark, config: dict[str, Any], fidelity: int | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """Look ``config`` up in ``bench``.

    Returns:
        ``(result, None)`` with every metric of the cell plus its ``key``, or ``(None, message)``
        when the config is invalid or the cell is not tabulated.
    """
    try:
        arch = bench.space.from_config(config)
        result: dict[str, Any] = bench.query(arch, fidelity)
        result["key"] = bench.space.key(arch)
    except Exception as exc:  # recorded as a failed trial, never raised into the sweep
        return None, f"{type(exc).__name__}: {exc}"
    return result, None


def tabular_trainable(config: dict[str, Any], bench: TabularBenchmark, fidelity: int | None = None) -> None:
    """Ray Tune function trainable; use with ``tune.with_parameters(tabular_trainable, bench=...)``.

    Raises on a failed lookup so that Tune marks the trial as errored and tells the searcher.
    """
    result, error = evaluate(bench, config, fidelity)
    if error is not None:
        raise RuntimeError(error)
    result["sim_time"] = bench.eval_time(bench.space.from_config(config), fidelity)
    tune.report(result)
