"""The evaluator layer: whatever turns an architecture into metrics, behind one small protocol.

The runner (the simulated backend, studies, the Tune path) talks to an :class:`Evaluator`,
never to a table. :class:`TabularEvaluator` looks cells up in a
:class:`~raynas.benchmarks.TabularBenchmark`; a training evaluator and a supernet evaluator plug
in the same way.

Example:
    >>> from raynas import benchmarks
    >>> ev = TabularEvaluator(benchmarks.load("nasbench_graph", dataset="cora"))
    >>> arch = ev.candidates()[0]
    >>> sorted(ev.evaluate(arch))[:3]
    ['key', 'latency', 'params']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from raynas.benchmarks import COST_METRICS, TabularBenchmark
from raynas.spaces import Arch, Space


@runtime_checkable
class Evaluator(Protocol):
    """What the runner needs from an evaluator.

    Attributes:
        space: The search space of the architectures it evaluates.
        metrics: The metric names :meth:`evaluate` returns (besides ``key``).
        cost_metrics: The metrics :meth:`cost` knows before evaluating (empty: none).
        partial: True when only :meth:`candidates` can be evaluated (a partial table).
    """

    space: Space
    metrics: Sequence[str]
    cost_metrics: Sequence[str]
    partial: bool

    def candidates(self) -> list[Arch] | None:
        """The architectures that can be evaluated when ``partial``; None when any can."""
        ...

    def evaluate(
        self, arch: Arch, hparams: dict[str, Any] | None = None, fidelity: int | None = None, seed: int | None = None
    ) -> dict[str, Any]:
        """Metrics of ``arch`` (plus its canonical ``key``); raises when it cannot be evaluated."""
        ...

    def cost(self, arch: Arch) -> dict[str, float] | None:
        """Resource costs known before evaluating (``params``, ``flops``, ``latency``), or None."""
        ...

    def eval_time(self, arch: Arch, fidelity: int | None = None) -> float | None:
        """Seconds one evaluation takes (simulated time), or None when unknown."""
        ...


class TabularEvaluator:
    """Evaluation by lookup in a tabular benchmark (exact, and instant in wall-clock time).

    Args:
        bench: The table; hyperparameters and seeds are ignored (the table averages its runs).
    """

    def __init__(self, bench: TabularBenchmark):
        self.bench = bench
        self.space = bench.space
        self.metrics = list(bench.metrics)
        self.cost_metrics = [m for m in COST_METRICS if m in bench.metrics]

    @property
    def partial(self) -> bool:
        """True when some cells of the space have no row; searchers then keep to candidates()."""
        return self.bench.partial

    def candidates(self) -> list[Arch] | None:
        return self.bench.candidates() if self.bench.partial else None

    def optimum(self, metric: str, fidelity: int | None = None, max_cost: dict[str, float] | None = None) -> float:
        """The table's best value of ``metric`` (within ``max_cost``), for regret."""
        return self.bench.optimum(metric, fidelity, max_cost)

    def evaluate(
        self, arch: Arch, hparams: dict[str, Any] | None = None, fidelity: int | None = None, seed: int | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.bench.query(arch, fidelity)
        result["key"] = self.space.key(arch)
        return result

    def cost(self, arch: Arch) -> dict[str, float] | None:
        if not self.cost_metrics:
            return None
        res = self.bench.query(arch)
        return {m: res[m] for m in self.cost_metrics if m in res}

    def eval_time(self, arch: Arch, fidelity: int | None = None) -> float | None:
        return self.bench.eval_time(arch, fidelity)

    def __repr__(self) -> str:
        return f"TabularEvaluator({self.bench!r})"


def as_evaluator(source: Evaluator | TabularBenchmark) -> Evaluator:
    """An evaluator for ``source``: a table is wrapped in a :class:`TabularEvaluator`."""
    if isinstance(source, TabularBenchmark):
        return TabularEvaluator(source)
    if not isinstance(source, Evaluator):
        raise TypeError(f"expected an Evaluator or a TabularBenchmark, got {type(source).__name__}")
    return source


def evaluate_config(
    evaluator: Evaluator, config: dict[str, Any], fidelity: int | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """Evaluate a searcher's ``config``: ``(result, None)``, or ``(None, message)`` on failure.

    Shared by the simulated backend and the Tune trainables, so both paths give identical
    results. A failure is returned, never raised, so that it is recorded as a failed trial.
    """
    try:
        arch = evaluator.space.from_config(config)
        result = evaluator.evaluate(arch, fidelity=fidelity)
    except Exception as exc:  # recorded as a failed trial, never raised into the sweep
        return None, f"{type(exc).__name__}: {exc}"
    return result, None

