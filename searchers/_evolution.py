"""Regularized evolution (Real, Aggarwal, Huang & Le, AAAI 2019), asynchronous form.

The population is a queue of the most recent ``population_size`` evaluated cells. A new cell
is a mutation of the best of ``sample_size`` members drawn at random; when a child joins, the
oldest member dies (aging), whatever its fitness. Until the population is full, cells are
sampled at random.

On a partial table the parent is mutated up to ``MUTATION_TRIES`` times until the child is an
unproposed tabulated cell; if none is, the child is the unproposed tabulated cell nearest to
the parent in token space (Hamming distance), the closest the table has to a mutation.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from raynas.searchers._base import ArchSearcher
from raynas.searchers._config import option, require
from raynas.spaces import Arch

#: Mutations tried on a partial table before the nearest tabulated cell is taken instead.
MUTATION_TRIES = 20


@dataclass(frozen=True)
class EvolutionConfig:
    """Regularized evolution settings (NAS-Bench-201 paper's values)."""

    population_size: int = option(10, "cells kept alive, P; the oldest dies when a child is born",
                                  "10 (NAS-Bench-201, Dong & Yang)")
    sample_size: int = option(3, "tournament size, S: the best of S random members is mutated",
                              "3 (NAS-Bench-201, Dong & Yang)")

    def __post_init__(self) -> None:
        require(
            1 <= self.sample_size <= self.population_size,
            f"need 1 <= sample_size <= population_size, got {self.sample_size} and {self.population_size}",
        )


class EvolutionSearcher(ArchSearcher):
    """Regularized evolution with tournament selection and aging.

    Args:
        space: The search space.
        config: :class:`EvolutionConfig`.
        **base: :class:`ArchSearcher` arguments.
    """

    name = "evolution"
    config_class = EvolutionConfig

    def __init__(self, space, *, config: EvolutionConfig | None = None, **base: Any):
        super().__init__(space, config=config, **base)
        self.population: deque[tuple[Arch, float]] = deque()

    def _propose(self) -> Arch | None:
        c = self.config
        if len(self.population) < c.population_size:
            return self.random_arch()
        idx = self.rng.choice(len(self.population), size=c.sample_size, replace=False)
        parent = max((self.population[int(i)] for i in idx), key=lambda m: m[1])[0]
        if self.candidates is None:
            return self.space.mutate(parent, self.rng)
        for _ in range(MUTATION_TRIES):  # a partial table: mutate until the child is tabulated ...
            child = self.space.mutate(parent, self.rng)
            if self.allowed(child):
                return child
        return self.nearest_candidate(self.tokens_of(parent, full=True), full=True)  # ... or its nearest cell

    def _observe(self, arch: Arch, score: float | None, result: dict | None) -> None:
        if score is None:
            return
        self.population.append((arch, score))
        if len(self.population) > self.config.population_size:
            self.population.popleft()

    def _state_dict(self) -> dict[str, Any]:
        return {"population": list(self.population)}

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self.population = deque(state["population"])
