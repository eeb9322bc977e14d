"""``Space.cost`` of the image spaces: params and FLOPs of their networks at the standard setting.

Convention (that of the NAS-Bench-Macro table, used for every space): ``params`` is the number
of trainable parameters and ``flops`` the multiply-adds of the convolution and linear layers for
one 3x32x32 image (biases, normalisation, activations and pooling excluded), both of the network
:func:`raynas.trainables.networks.build_network` builds with 10 classes (CIFAR-10) and the
paper's default widths: NAS-Bench-201 ``C = 16``, 5 cells per stage; NAS-Bench-Macro stem 32,
head 1280; NAS-Bench-101 stem 128, 3 stacks of 3 cells; DARTS ``C = 36``, 20 cells, no auxiliary
head. Both are Python ints.

Two strategies, both built on real network builds counted by
:func:`~raynas.trainables.networks.count_params` and
:func:`~raynas.trainables.networks.count_flops`:

* :class:`AdditiveCost` (NAS-Bench-201, NAS-Bench-Macro): the cost is a base plus one term per
  position (edge or layer) and choice, measured once from ``1 + sum(len(choices) - 1)`` builds;
  a call is then a few dict lookups. The decomposition is exact for these two spaces (every op
  of a NAS-Bench-201 cell runs whatever the others are, and a Macro layer's shape does not
  depend on the other layers' choices); ``tests/test_space_cost.py`` compares it with full
  builds on a sample and with the published Macro table, and a one-off run matched full builds
  on all 15,625 NB201 and 6,561 Macro cells.
* :func:`measured_cost` (NAS-Bench-101, DARTS): one full build per call, LRU-cached.

Torch is imported only when a cost is first computed, so importing a space stays light. Builds
run on the CPU, on one intra-op thread (the caller's count is restored), under
:func:`torch.random.fork_rng`, so computing a cost never moves the caller's global torch RNG.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import cache, lru_cache
from typing import Any

#: The standard setting of every cost: CIFAR-10's classes and one ``(C, H, W)`` image.
NUM_CLASSES = 10
INPUT_SHAPE = (3, 32, 32)


def measure(space: Any, arch: Hashable) -> tuple[int, int]:
    """``(params, flops)`` of a full build of ``arch``'s network at the standard setting.

    Args:
        space: A :class:`~raynas.spaces.Space` (or its name) with an image network.
        arch: A valid architecture of ``space``.

    Returns:
        Trainable parameters and multiply-adds (biases excluded) for one 3x32x32 image.
    """
    import torch

    from raynas.trainables.networks import build_network, count_flops, count_params

    # Initialising the weights draws from the global torch RNG: fork it so that the caller's
    # random stream is untouched. A CPU forward pass of one image is faster than a meta one,
    # and one thread is faster than several for it (many times so on shared cores);
    # ``set_num_threads`` is process-wide, so the caller's count is restored.
    threads = torch.get_num_threads()
    if threads != 1:
        torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]), torch.device("cpu"):
            net = build_network(space, arch, num_classes=NUM_CLASSES)
        return count_params(net), count_flops(net, INPUT_SHAPE)
    finally:
        if threads != 1:
            torch.set_num_threads(threads)


class AdditiveCost:
    """Cost of a space whose cost is additive over positions: ``base + sum_i delta[i][arch[i]]``.

    ``base`` is the cost of the reference architecture (the first choice everywhere) and
    ``delta[i][c]`` what changing position ``i`` of the reference to ``c`` adds; both come from
    full builds (:func:`measure`). The caller validates architectures.

    Args:
        space: The space (or its name).
        choices: For each position, its choices (hashable, as they appear in architectures).
    """

    def __init__(self, space: Any, choices: Sequence[Sequence[Hashable]]):
        reference = tuple(c[0] for c in choices)
        self.base = measure(space, reference)
        self.deltas: list[dict[Hashable, tuple[int, int]]] = []
        for i, options in enumerate(choices):
            table = {reference[i]: (0, 0)}
            for choice in options[1:]:
                p, f = measure(space, reference[:i] + (choice,) + reference[i + 1 :])
                table[choice] = (p - self.base[0], f - self.base[1])
            self.deltas.append(table)

    def __call__(self, arch: Sequence[Hashable]) -> dict[str, int]:
        params, flops = self.base
        for table, choice in zip(self.deltas, arch):
            dp, df = table[choice]
            params += dp
            flops += df
        return {"params": params, "flops": flops}


@cache
def additive_cost(name: str, choices: tuple[tuple[Hashable, ...], ...]) -> AdditiveCost:
    """The :class:`AdditiveCost` of space ``name``, built on first use and kept."""
    return AdditiveCost(name, choices)


@lru_cache(maxsize=1 << 14)
def _measured(name: str, arch: Hashable) -> tuple[int, int]:
    return measure(name, arch)


def measured_cost(name: str, arch: Hashable) -> dict[str, int]:
    """Cost of ``arch`` by a full build, LRU-cached on ``(name, arch)`` (16,384 entries).

    ``arch`` must be valid and hashable, and equal architectures must build the same network
    (pass NAS-Bench-101 cells pruned).
    """
    params, flops = _measured(name, arch)
    return {"params": params, "flops": flops}
