"""The DARTS one-shot supernet: DARTS's search network, for SPOS paths and SNAS's mixtures.

The network of DARTS's search (Liu et al., ICLR 2019, ``cnn/model_search.py``): a 3x3 conv
stem to ``3C`` channels, ``layers`` cells (8 in the paper) with reduction cells at 1/3 and 2/3
of the depth, where the channels double, and a global-pool linear head. Each cell preprocesses
its two inputs (``ReLUConvBN`` 1x1, or ``FactorizedReduce`` after a reduction) and has 4
intermediate nodes, each connected to both cell inputs and to every earlier node: 14 edges, each
a :class:`~raynas.trainables.networks._supernet.MixedEdge` over the 8 DARTS ops, ``none``
(zero) included. The op modules are the stand-alone ``DartsNetwork``'s own constructors
(:data:`~raynas.trainables.networks._darts.OPS`), built with ``affine=False`` batch norm by
default as in DARTS's search. Normal cells share one choice, reduction cells another.

``forward(x, choice)`` takes

* a genotype (a 2-input ``Genotype`` or a ``NodeGenotype``) or its path, 28 op indices (the
  normal cell's 14 edges, then the reduction cell's; -1 where the genotype has no edge): a
  single path, as SPOS trains and evaluates it; a node without edges gives zeros; or
* a ``(28, 8)`` weight tensor: edge ``e`` outputs ``sum_k w[e, k] * op_k(x)``, SNAS's
  concrete sample (the zero op contributes nothing).

Unlike DARTS's ``MixedOp`` the pooling ops get no extra batch norm, so that a path is exactly
the stand-alone child network (:func:`darts_child_network`).

Example:
    >>> import torch
    >>> from raynas.spaces._darts import DARTS_V2
    >>> net = DartsSupernet(num_classes=10, channels=4, layers=3)
    >>> net(torch.zeros(2, 3, 8, 8), DARTS_V2).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from raynas.spaces._darts_genotype import _OP_INDEX, CELLS, N_NODES, Genotype
from raynas.spaces._darts_genotype import OPS as OP_NAMES
from raynas.spaces._darts_nodes import NodeGenotype, nodes_of
from raynas.trainables.networks._darts import OPS, FactorizedReduce
from raynas.trainables.networks._ops import ReLUConvBN, Zero
from raynas.trainables.networks._supernet import MixedEdge

#: The 14 edges of a cell as ``(input, node)``: node ``n`` reads inputs ``0 .. n + 1``.
EDGES = tuple((i, n) for n in range(N_NODES) for i in range(n + 2))
#: Rows of a path or weight tensor: the normal cell's 14 edges, then the reduction cell's.
N_ROWS = len(CELLS) * len(EDGES)


def edge_index(node: int, inp: int) -> int:
    """Index among the 14 edges of the edge from input ``inp`` into node ``node``."""
    return node * (node + 3) // 2 + inp


def darts_path(arch: Genotype | NodeGenotype | Sequence[int]) -> list[int]:
    """The 28-entry path of a genotype (op index per edge, -1 for no edge), or a path, checked."""
    if isinstance(arch, (Genotype, NodeGenotype)):
        path = [-1] * N_ROWS
        nodes = nodes_of(arch)
        for c, cell in enumerate(CELLS):
            for n, node in enumerate(getattr(nodes, cell)):
                for op, inp in node:
                    path[c * len(EDGES) + edge_index(n, inp)] = _OP_INDEX[op]
        return path
    path = [int(k) for k in arch]
    if len(path) != N_ROWS or any(not -1 <= k < len(OP_NAMES) for k in path):
        raise ValueError(f"a DARTS path has {N_ROWS} entries in [-1, {len(OP_NAMES)}), got {path}")
    return path


def sample_darts_path(gen: torch.Generator) -> list[int]:
    """A uniformly drawn genotype's path: per cell and node, two distinct inputs, an op each.

    Uniform over the DARTS space's genotypes (``DartsSpace.sample``'s distribution), drawn
    from ``gen``: every node reads an unordered pair of distinct inputs, each pair equally
    likely, and each of its two edges one of the 8 ops (``none`` included).
    """
    path = [-1] * N_ROWS
    for c in range(len(CELLS)):
        for n in range(N_NODES):
            inputs = torch.randperm(n + 2, generator=gen)[:2].tolist()
            ops = torch.randint(len(OP_NAMES), (2,), generator=gen).tolist()
            for inp, op in zip(inputs, ops):
                path[c * len(EDGES) + edge_index(n, inp)] = op
    return path


class DartsSuperCell(nn.Module):
    """A search cell: two preprocessed inputs, 4 nodes over 14 mixed edges, the nodes concatenated."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool, affine: bool):
        super().__init__()
        self.reduction = reduction
        self.empty = Zero(2 if reduction else 1)  # the output of a node the path gives no edge
        self.preprocess0 = FactorizedReduce(c_pp, c, affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, affine=affine)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, affine=affine)
        self.edges = nn.ModuleList(
            MixedEdge(OPS[name](c, 2 if reduction and i < 2 else 1, affine) for name in OP_NAMES) for i, _ in EDGES
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, choices: Sequence[int | torch.Tensor]) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]  # 2 x (B, c, H, W)
        for n in range(N_NODES):
            total = None
            for inp in range(n + 2):
                e = edge_index(n, inp)
                choice = choices[e]
                if isinstance(choice, int) and choice < 0:  # the path has no such edge
                    continue
                h = self.edges[e](states[inp], choice)
                total = h if total is None else total + h
            states.append(self.empty(states[1]) if total is None else total)
        return torch.cat(states[2:], dim=1)  # (B, 4c, H', W')


class DartsSupernet(nn.Module):
    """The DARTS one-shot supernet (see the module docstring).

    Args:
        num_classes: Classifier outputs.
        channels: Initial channels ``C`` (16 in DARTS's search).
        layers: Cells (8 in DARTS's search); reductions at ``layers // 3`` and ``2 * layers // 3``.
        in_channels: Input image channels.
        affine: Batch norm with scale and shift in the cells (DARTS's search: without).
    """

    def __init__(self, num_classes: int = 10, channels: int = 16, layers: int = 8, in_channels: int = 3,
                 affine: bool = False):
        super().__init__()
        if layers < 3:
            raise ValueError(f"a DARTS network needs at least 3 cells (a normal and two reductions), got {layers}")
        self.num_classes, self.channels, self.layers = num_classes, channels, layers
        c_curr = 3 * channels  # stem multiplier 3
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, channels
        reductions = {layers // 3, 2 * layers // 3}
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c_curr *= 2
            self.cells.append(DartsSuperCell(c_pp, c_p, c_curr, reduction, reduction_prev, affine))
            reduction_prev = reduction
            c_pp, c_p = c_p, N_NODES * c_curr
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c_p, num_classes)

    def mixed_edges(self) -> Iterator[tuple[int, MixedEdge]]:
        """Every mixed edge with its row in a path or weight tensor (cells of a type share rows)."""
        for cell in self.cells:
            offset = len(EDGES) if cell.reduction else 0
            for e, edge in enumerate(cell.edges):
                yield offset + e, edge

    def forward(self, x: torch.Tensor, choice) -> torch.Tensor:  # (B, C_in, H, W)
        if isinstance(choice, torch.Tensor):
            if choice.shape != (N_ROWS, len(OP_NAMES)):
                raise ValueError(f"edge weights have shape {(N_ROWS, len(OP_NAMES))}, got {tuple(choice.shape)}")
            rows: Sequence[int | torch.Tensor] = list(choice)
        else:
            rows = darts_path(choice)
        normal, reduce = rows[: len(EDGES)], rows[len(EDGES):]
        s0 = s1 = self.stem(x)  # (B, 3C, H, W)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
        return self.classifier(self.pool(s1))  # (B, num_classes)


def darts_child_network(supernet: DartsSupernet, arch: Genotype | NodeGenotype) -> nn.Module:
    """The stand-alone ``DartsNetwork`` of ``arch`` with the supernet's weights (copied).

    Each edge of the genotype gets the module of its op on that edge of the supernet; stem,
    preprocessing and classifier are copied as they are. In eval mode it computes exactly
    what ``supernet(x, arch)`` does (batch norm stays as the supernet built it, ``affine=False``).
    """
    from raynas.trainables.networks._darts import DartsNetwork

    nodes = nodes_of(arch)
    with torch.random.fork_rng(devices=[]):
        child = DartsNetwork(arch, supernet.num_classes, supernet.channels, supernet.layers)
    child.stem, child.classifier = copy.deepcopy(supernet.stem), copy.deepcopy(supernet.classifier)
    for cell, source in zip(child.cells, supernet.cells):
        cell.preprocess0 = copy.deepcopy(source.preprocess0)
        cell.preprocess1 = copy.deepcopy(source.preprocess1)
        edges = nodes.reduce if source.reduction else nodes.normal
        cell.ops = nn.ModuleList(
            copy.deepcopy(source.edges[edge_index(n, inp)].ops[_OP_INDEX[op]])
            for n, node in enumerate(edges) for op, inp in node
        )
    return child
