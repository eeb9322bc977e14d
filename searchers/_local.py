"""Local search (White, Nolen, Savani & Mallick, "Local search is state of the art for NAS
benchmarks", 2021).

Start from a random cell; evaluate its neighbours in random order; as soon as one beats the
incumbent, move there and start on its neighbourhood. When a neighbourhood is exhausted with
no improvement (a local optimum), restart from a random cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raynas.searchers._base import ArchSearcher
from raynas.searchers._config import option, require
from raynas.spaces import Arch


@dataclass(frozen=True)
class LocalConfig:
    """Local search settings.

    Attributes:
        num_init: Random cells evaluated before the first climb; the best becomes the incumbent
            (White et al.: 10).
    """

    num_init: int = option(10, "random cells before the first climb; the best is the start", "10 (White et al., 2021)")

    def __post_init__(self) -> None:
        require(self.num_init >= 1, f"num_init must be >= 1, got {self.num_init}")


class LocalSearcher(ArchSearcher):
    """First-improvement local search with random restarts.

    Args:
        space: The search space.
        config: :class:`LocalConfig`.
        **base: :class:`ArchSearcher` arguments.
    """

    name = "local"
    config_class = LocalConfig

    def __init__(self, space, *, config: LocalConfig | None = None, **base: Any):
        super().__init__(space, config=config, **base)
        self.incumbent: tuple[Arch, float] | None = None
        self.queue: list[Arch] = []  # unvisited neighbours of the incumbent
        self.restart = False

    def _propose(self) -> Arch | None:
        if self.incumbent is None or self.restart or len(self.evaluated) < self.config.num_init:
            return self.random_arch()
        while self.queue:
            arch = self.queue.pop()
            if self.allowed(arch):
                return arch
        self.restart = True  # local optimum: no unvisited neighbour left
        return self.random_arch()

    def _observe(self, arch: Arch, score: float | None, result: dict | None) -> None:
        if score is None or len(self.evaluated) < self.config.num_init:
            return
        if self.incumbent is None:  # the initial random phase just ended: climb from its best
            best = self.best()
            assert best is not None
            self._move(best["arch"], best["score"])
        elif self.restart or score > self.incumbent[1]:
            self.restart = False
            self._move(arch, score)

    def _move(self, arch: Arch, score: float) -> None:
        self.incumbent = (arch, score)
        neigh = self.space.neighbors(arch)
        self.queue = [neigh[int(i)] for i in self.rng.permutation(len(neigh))]

    def _state_dict(self) -> dict[str, Any]:
        return {"incumbent": self.incumbent, "queue": list(self.queue), "restart": self.restart}

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self.incumbent = state["incumbent"]
        self.queue = list(state["queue"])
        self.restart = state["restart"]
