"""Random search: uniform samples from the space (or the table), never repeating a cell."""

from __future__ import annotations

from raynas.searchers._base import ArchSearcher
from raynas.spaces import Arch


class RandomSearcher(ArchSearcher):
    """Uniform random search without replacement (up to isomorphism).

    Example:
        >>> s = RandomSearcher("nasbench201", metric="test_accuracy", mode="max", seed=0)
        >>> sorted(s.suggest("t0"))[:2]
        ['edge_0_1', 'edge_0_2']
    """

    name = "random"

    def _propose(self) -> Arch | None:
        return self.random_arch()
