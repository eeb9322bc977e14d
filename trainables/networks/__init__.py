"""PyTorch networks for the image search spaces, built from an architecture.

``build_network(space, arch)`` dispatches on ``space.name``; each family lives in its own
module with an ``OPS`` registry (op name -> constructor). :func:`count_params` and
:func:`count_flops` measure any of them.

Example:
    >>> import torch
    >>> from raynas.spaces import get_space
    >>> space = get_space("nasbench_macro")
    >>> net = build_network(space, space.from_string("02012100"))
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from typing import Any

from torch import nn

from raynas.spaces import Arch, Space, get_space
from raynas.spaces._darts_nodes import NodeGenotype, check_nodes
from raynas.trainables.networks._count import count_flops, count_params

#: Spaces with an image network -> their builder (imported lazily, one module per family).
SUPPORTED = ("nasbench201", "nasbench_macro", "nasbench101", "darts")
#: Spaces known to have no image network, and why.
_NO_NETWORK = {
    "nasbench_graph": "it is a GNN space (node classification on graphs) with no image network",
}


def check_network_space(name: str) -> None:
    """Raise ``ValueError`` unless space ``name`` has an image network (see :data:`SUPPORTED`)."""
    if name not in SUPPORTED:
        why = _NO_NETWORK.get(name, "no network is defined for it")
        raise ValueError(
            f"cannot build a network for space {name!r}: {why}; "
            f"networks exist for {', '.join(SUPPORTED)}"
        )


def build_network(
    space: Space | str, arch: Arch, num_classes: int = 10, **options: Any
) -> nn.Module:
    """Build the PyTorch network of ``arch`` in ``space``.

    Args:
        space: A space or its name.
        arch: An architecture of ``space`` (validated here); for DARTS also a
            :class:`~raynas.spaces._darts_nodes.NodeGenotype`, the variable-input cells SNAS derives.
        num_classes: Classifier outputs.
        **options: Family settings, e.g. ``channels`` for NAS-Bench-201 or ``stem_channels``
            for NAS-Bench-101; the paper's values are the defaults.

    Returns:
        A freshly initialised ``nn.Module`` mapping ``(B, 3, 32, 32)`` to ``(B, num_classes)``.

    Raises:
        ValueError: ``space`` has no image network.
        InvalidArchitectureError: ``arch`` is not valid in ``space``.
    """
    space = get_space(space) if isinstance(space, str) else space
    name = space.name
    check_network_space(name)
    if name == "darts" and isinstance(arch, NodeGenotype):
        check_nodes(arch)  # a SNAS child: not in the space (any number of edges per node), but buildable
    else:
        space.validate(arch)
    if name == "nasbench201":
        from raynas.trainables.networks._nasbench201 import NASBench201Network

        return NASBench201Network(arch, num_classes, **options)  # type: ignore[arg-type]
    if name == "nasbench_macro":
        from raynas.trainables.networks._nasbench_macro import NASBenchMacroNetwork

        return NASBenchMacroNetwork(arch, num_classes, **options)  # type: ignore[arg-type]
    if name == "nasbench101":
        from raynas.trainables.networks._nasbench101 import NASBench101Network

        return NASBench101Network(space.prune(arch), num_classes, **options)  # type: ignore[attr-defined]
    from raynas.trainables.networks._darts import DartsNetwork

    return DartsNetwork(arch, num_classes, **options)  # type: ignore[arg-type]


def network_cost(space: Space | str, arch: Arch, num_classes: int, image_side: int, **options: Any) -> dict[str, float]:
    """``{"params": M, "flops": M}`` of the stand-alone network of ``arch`` for ``image_side`` inputs.

    Millions of parameters, and millions of multiply-adds with biases counted (NAS-Bench-201's
    convention); the network is built only to be counted, with the global RNG left as it was.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        net = build_network(space, arch, num_classes, **options)
    return {"params": count_params(net) / 1e6, "flops": count_flops(net, (3, image_side, image_side), bias=True) / 1e6}


__all__ = ["SUPPORTED", "build_network", "check_network_space", "count_flops", "count_params", "network_cost"]
