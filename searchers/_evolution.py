"""Regularized evolution (Real, Aggarwal, Huang & Le, AAAI 2019), asynchronous form.

The population is a queue of the most recent ``population_size`` evaluated cells. A new cell
is a mutation of the best of ``sample_size`` members drawn at random; when a child joins, the
oldest member dies (aging), whatever its fitness. Until the population is full, cells are
sampled at random.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from raynas.searchers._base import ArchSearcher
from raynas.spaces import Arch


class EvolutionSearcher(ArchSearcher):
    """Regularized evolution with tournament selection and aging.

    Args:
        population_size: P, the number of live members (NAS-Bench-201 paper: 10).
        sample_size: S, the tournament size (NAS-Bench-201 paper: 3).
        **kwargs: :class:`ArchSearcher` arguments.
    """

    name = "evolution"

    def __init__(self, space, population_size: int = 10, sample_size: int = 3, **kwargs: Any):
        super().__init__(space, **kwargs)
        if not 1 <= sample_size <= population_size:
            raise ValueError(
                f"need 1 <= sample_size <= population_size, got {sample_size} and {population_size}"
            )
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self.population: deque[tuple[Arch, float]] = deque()

    def _propose(self) -> Arch | None:
        if len(self.population) < self.population_size:
            return self.random_arch()
        idx = self.rng.choice(len(self.population), size=self.sample_size, replace=False)
        parent = max((self.population[int(i)] for i in idx), key=lambda m: m[1])[0]
        return self.space.mutate(parent, self.rng)

    def _observe(self, arch: Arch, score: float | None, result: dict | None) -> None:
        if score is None:
            return
        self.population.append((arch, score))
        if len(self.population) > self.population_size:
            self.population.popleft()

    def _state_dict(self) -> dict[str, Any]:
        return {"population": list(self.population)}

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self.population = deque(state["population"])
