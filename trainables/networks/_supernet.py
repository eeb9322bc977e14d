"""One-shot supernets: every candidate op of every edge in one network, sharing its weights.

:class:`NASBench201Supernet` is the NAS-Bench-201 ``TinyNetwork`` (the same stem, residual
reductions and head as :class:`~raynas.trainables.networks._nasbench201.NASBench201Network`)
whose cells hold, on each of their six edges, one module per op of
:data:`~raynas.trainables.networks._nasbench201.OPS`, the very constructors of the stand-alone
network. All cells of the network share one choice of ops, as the cells of a NAS-Bench-201
architecture do.

``forward(x, choice)`` takes either

* an architecture (six op names), or six op indices: a single path, as SPOS trains and
  evaluates it (Guo et al., 2020, "Single Path One-Shot NAS with Uniform Sampling"); or
* a ``(6, 5)`` weight tensor: edge ``e`` outputs ``sum_k w[e, k] * op_k(x)``, the relaxed edge
  of DARTS and of SNAS's concrete samples (ops whose weight is exactly zero are skipped).

:class:`NASBenchMacroSupernet` holds the three choices of every Macro layer; the DARTS supernet
(DARTS's search network, 14 :class:`MixedEdge` per cell) lives in
:mod:`~raynas.trainables.networks._supernet_darts`. :func:`build_supernet`,
:func:`supernet_path` and :func:`sample_path` dispatch on the space.

Example:
    >>> import torch
    >>> net = NASBench201Supernet(num_classes=10, channels=4, cells_per_stage=1)
    >>> arch = ("nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none")
    >>> net(torch.zeros(2, 3, 8, 8), arch).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn

from raynas.spaces._nasbench201 import EDGES
from raynas.spaces._nasbench201 import OPS as OP_NAMES
from raynas.trainables.networks._nasbench201 import OPS, ResidualReduction
from raynas.trainables.networks._ops import Zero

#: Index of each op name in a weight row or a path.
OP_INDEX = {name: i for i, name in enumerate(OP_NAMES)}


def path_of(choice: Sequence[str] | Sequence[int]) -> list[int]:
    """Op indices of an architecture (op names) or of a path (indices), checked."""
    if len(choice) != len(EDGES):
        raise ValueError(f"a NAS-Bench-201 path has {len(EDGES)} edges, got {len(choice)}")
    path = [OP_INDEX[c] if isinstance(c, str) else int(c) for c in choice]
    if any(not 0 <= i < len(OP_NAMES) for i in path):
        raise ValueError(f"op indices lie in [0, {len(OP_NAMES)}), got {path}")
    return path


class MixedEdge(nn.Module):
    """One edge of a supernet: one module per candidate op, one of them the zero op.

    ``forward(x, k)`` runs op ``k`` (a single path); ``forward(x, w)`` with weights ``w`` (K,)
    is the relaxed edge ``sum_k w[k] * op_k(x)``, skipping the zero op and zero weights.
    """

    def __init__(self, ops: Iterable[nn.Module]):
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self.zero = next(k for k, op in enumerate(self.ops) if isinstance(op, Zero))

    def forward(self, x: torch.Tensor, choice: int | torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        if isinstance(choice, int):
            return self.ops[choice](x)
        out = None
        for k, op in enumerate(self.ops):  # weights (K,): the relaxed edge
            if k == self.zero or not bool(choice[k] != 0):  # zero contributes nothing
                continue
            term = choice[k] * op(x)
            out = term if out is None else out + term
        return self.ops[self.zero](x) if out is None else out  # zeros at the output resolution


class SuperCell(nn.Module):
    """The 4-node NAS-Bench-201 cell with a :class:`MixedEdge` on each of its six edges."""

    def __init__(self, channels: int):
        super().__init__()
        self.edges = nn.ModuleList(MixedEdge(OPS[name](channels) for name in OP_NAMES) for _ in EDGES)

    def forward(self, x: torch.Tensor, choices: Sequence[int | torch.Tensor]) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            terms = [edge(nodes[src], choices[e]) for e, ((src, dst), edge) in enumerate(zip(EDGES, self.edges))
                     if dst == target]
            nodes.append(sum(terms[1:], terms[0]))
        return nodes[-1]


class NASBench201Supernet(nn.Module):
    """The NAS-Bench-201 one-shot supernet (see the module docstring).

    Args:
        num_classes: Classifier outputs.
        channels: Stem and first-stage channels ``C`` (16 in the benchmark).
        cells_per_stage: Cells per stage ``N`` (5 in the benchmark).
        in_channels: Input image channels.
    """

    def __init__(self, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 5, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(SuperCell(c) for _ in range(cells_per_stage))
        self.cells = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c, num_classes)

    def mixed_edges(self) -> Iterator[tuple[int, MixedEdge]]:
        """Every mixed edge with its row in a path or weight tensor (the edge index; cells share it)."""
        for layer in self.cells:
            if isinstance(layer, SuperCell):
                yield from enumerate(layer.edges)

    def forward(self, x: torch.Tensor, choice: Sequence[str] | Sequence[int] | torch.Tensor) -> torch.Tensor:
        if isinstance(choice, torch.Tensor):
            if choice.shape != (len(EDGES), len(OP_NAMES)):
                raise ValueError(f"edge weights have shape {(len(EDGES), len(OP_NAMES))}, got {tuple(choice.shape)}")
            choices: Sequence[int | torch.Tensor] = list(choice)
        else:
            choices = path_of(choice)
        x = self.stem(x)  # (B, C, H, W)
        for layer in self.cells:
            x = layer(x, choices) if isinstance(layer, SuperCell) else layer(x)
        return self.classifier(self.head(x))  # (B, num_classes)


def child_network(supernet: NASBench201Supernet, arch: Sequence[str]) -> nn.Module:
    """The stand-alone :class:`NASBench201Network` of ``arch``, with the supernet's weights.

    Each edge gets the module of its op in the supernet (copied, not shared); stem, reductions and
    head are copied as they are. In eval mode it computes exactly what ``supernet(x, arch)``
    does, so a cell found on the supernet can be fine-tuned from the inherited weights.
    """
    import copy

    from raynas.trainables.networks._nasbench201 import Cell201, NASBench201Network

    path = path_of(arch)
    first = next(m for m in supernet.cells if isinstance(m, SuperCell))
    channels = first.edges[0].ops[OP_INDEX["nor_conv_3x3"]][1].in_channels
    per_stage = sum(1 for m in supernet.cells if isinstance(m, SuperCell)) // 3
    with torch.random.fork_rng(devices=[]):
        child = NASBench201Network(tuple(OP_NAMES[i] for i in path), supernet.classifier.out_features,
                                   channels, per_stage)
    child.stem = copy.deepcopy(supernet.stem)
    child.head, child.classifier = copy.deepcopy(supernet.head), copy.deepcopy(supernet.classifier)
    for i, layer in enumerate(supernet.cells):
        if isinstance(layer, SuperCell):
            target = child.cells[i]
            assert isinstance(target, Cell201)
            target.ops = nn.ModuleList(copy.deepcopy(edge.ops[k]) for edge, k in zip(layer.edges, path))
        else:
            child.cells[i] = copy.deepcopy(layer)
    return child


class NASBenchMacroSupernet(nn.Module):
    """The NAS-Bench-Macro one-shot supernet: every layer holds its three choices.

    The skeleton (stem, three stages whose first layer halves the resolution and doubles the
    channels, 1x1 head, classifier) and the choice modules are those of
    :class:`~raynas.trainables.networks._nasbench_macro.NASBenchMacroNetwork`; ``forward(x,
    arch)`` runs the path of eight choices (SPOS's setting: its own space is a chain of choice
    blocks like this one).
    """

    def __init__(self, num_classes: int = 10, init_channels: int = 32, stages: Sequence[int] = (2, 3, 3),
                 head_channels: int = 1280, in_channels: int = 3):
        super().__init__()
        from raynas.spaces._nasbench_macro import OPS as MACRO_NAMES
        from raynas.trainables.networks._nasbench_macro import OPS as MACRO_OPS
        from raynas.trainables.networks._nasbench_macro import _conv_bn

        self.stem = nn.Sequential(*_conv_bn(in_channels, init_channels, 3), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        c = init_channels
        for depth in stages:
            for i in range(depth):
                c_in, c_out, stride = (c, 2 * c, 2) if i == 0 else (c, c, 1)
                layers.append(nn.ModuleList(MACRO_OPS[name](c_in, c_out, stride) for name in MACRO_NAMES))
                c = c_out
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(*_conv_bn(c, head_channels, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.classifier = nn.Linear(head_channels, num_classes)

    def forward(self, x: torch.Tensor, choice: Sequence[int]) -> torch.Tensor:
        if len(choice) != len(self.layers):
            raise ValueError(f"a NAS-Bench-Macro path has {len(self.layers)} layers, got {len(choice)}")
        x = self.stem(x)
        for layer, k in zip(self.layers, choice):
            x = layer[int(k)](x)
        return self.classifier(self.head(x))


def build_supernet(space: str, num_classes: int, in_channels: int = 3, **options) -> nn.Module:
    """The one-shot supernet of ``space`` (``nasbench201``, ``nasbench_macro`` or ``darts``)."""
    if space == "nasbench201":
        return NASBench201Supernet(num_classes, in_channels=in_channels, **options)
    if space == "nasbench_macro":
        return NASBenchMacroSupernet(num_classes, in_channels=in_channels, **options)
    if space == "darts":
        from raynas.trainables.networks._supernet_darts import DartsSupernet

        return DartsSupernet(num_classes, in_channels=in_channels, **options)
    raise ValueError(f"no supernet for space {space!r}; supernets exist for nasbench201, nasbench_macro and darts")


def supernet_path(space: str, arch) -> list[int]:
    """The path of ``arch`` in the supernet of ``space``: op indices per edge or per layer
    (DARTS: per cell type and edge, -1 where the genotype has no edge)."""
    if space == "nasbench201":
        return path_of(arch)
    if space == "darts":
        from raynas.trainables.networks._supernet_darts import darts_path

        return darts_path(arch)
    return [int(k) for k in arch]


def sample_path(gen: torch.Generator, space: str = "nasbench201") -> list[int]:
    """A uniformly drawn path of the supernet of ``space``: SPOS's uniform path sampling.

    NAS-Bench-201 and Macro: an op per edge (or a choice per layer); DARTS: a genotype of the
    space, per node two distinct inputs and an op for each (see ``sample_darts_path``).
    """
    if space == "darts":
        from raynas.trainables.networks._supernet_darts import sample_darts_path

        return sample_darts_path(gen)
    decisions, options = path_choices(space)
    return torch.randint(options, (decisions,), generator=gen).tolist()


def path_choices(space: str) -> tuple[int, int]:
    """``(decisions, options per decision)`` of a path in the supernet of ``space``."""
    if space == "nasbench201":
        return len(EDGES), len(OP_NAMES)
    from raynas.spaces._nasbench_macro import N_LAYERS
    from raynas.spaces._nasbench_macro import OPS as MACRO_NAMES

    return N_LAYERS, len(MACRO_NAMES)
