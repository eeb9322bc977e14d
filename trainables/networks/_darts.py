"""The DARTS evaluation network for CIFAR (Liu et al., ICLR 2019): stacked cells of a genotype.

``layers`` cells of ``C`` channels (tripled in the stem) with reduction cells at 1/3 and 2/3 of
the depth, where the channels double; each cell takes the outputs of the two previous cells,
builds 4 nodes of two ops each and concatenates them. Drop path (scheduled by the trainer through
``drop_path_prob``) and an auxiliary head after the second reduction are optional. With the
defaults the published DARTS (second-order) cell has 3,349,342 parameters outside the
auxiliary head, the 3.3 M of the paper.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from raynas.spaces._darts import CONCAT, Genotype
from raynas.spaces._darts_nodes import NodeGenotype, nodes_of
from raynas.trainables.networks._ops import ReLUConvBN, Zero


class DilConv(nn.Sequential):
    """ReLU, depthwise (dilated) conv, pointwise conv, batch norm (``affine=False``: DARTS's search)."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, dilation: int, affine: bool = True
    ):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride, padding, dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two separable convs (the first carries the stride), as in DARTS."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, affine: bool = True):
        super().__init__(
            DilConv(c_in, c_in, kernel_size, stride, 1, affine),
            DilConv(c_in, c_out, kernel_size, 1, 1, affine),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convs, concatenated, then BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W)
        x = self.relu(x)
        y = torch.cat([self.conv_a(x), self.conv_b(x[:, :, 1:, 1:])], dim=1)
        return self.bn(y)  # (B, C_out, H/2, W/2)


#: Ops by DARTS name; constructors take ``(C, stride, affine=True)`` (the search network: ``affine=False``).
OPS: dict[str, Callable[..., nn.Module]] = {
    "none": lambda c, stride, affine=True: Zero(stride),
    "avg_pool_3x3": lambda c, stride, affine=True: nn.AvgPool2d(3, stride, 1, count_include_pad=False),
    "max_pool_3x3": lambda c, stride, affine=True: nn.MaxPool2d(3, stride, 1),
    "skip_connect": lambda c, stride, affine=True: (
        nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    ),
    "sep_conv_3x3": lambda c, stride, affine=True: SepConv(c, c, 3, stride, affine),
    "sep_conv_5x5": lambda c, stride, affine=True: SepConv(c, c, 5, stride, affine),
    "dil_conv_3x3": lambda c, stride, affine=True: DilConv(c, c, 3, stride, 2, affine),
    "dil_conv_5x5": lambda c, stride, affine=True: DilConv(c, c, 5, stride, 2, affine),
}


def drop_path(x: torch.Tensor, prob: float, generator: torch.Generator | None) -> torch.Tensor:
    """Zero whole samples of ``x`` with probability ``prob`` and rescale the others."""
    keep = 1.0 - prob
    mask = torch.rand(x.shape[0], generator=generator) < keep  # (B,) drawn on the CPU
    return x * mask.to(x.device, x.dtype).view(-1, 1, 1, 1) / keep


class DartsCell(nn.Module):
    """A normal or reduction cell of a genotype.

    Args:
        nodes: Per intermediate node, its ``(op, input)`` edges: two each for a DARTS
            genotype, any number for a SNAS child (a node with none outputs zeros).
        concat: Nodes concatenated into the output.
        c_pp: Channels of ``c_{k-2}``.
        c_p: Channels of ``c_{k-1}``.
        c: Channels of every node.
        reduction: Whether this cell halves the resolution.
        reduction_prev: Whether ``c_{k-2}`` has twice this cell's input resolution.
    """

    def __init__(
        self,
        nodes: tuple[tuple[tuple[str, int], ...], ...],
        concat: tuple[int, ...] | range,
        c_pp: int,
        c_p: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
    ):
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1)
        self.preprocess1 = ReLUConvBN(c_p, c, 1)
        self.empty = Zero(2 if reduction else 1)  # the output of a node whose edges were all dropped
        self.node_edges = [len(node) for node in nodes]
        self.inputs = [i for node in nodes for _, i in node]
        self.concat = list(concat)
        # One flat list in node order: a 2-input genotype keeps the module names ops.0 .. ops.7.
        self.ops = nn.ModuleList(
            OPS[op](c, 2 if reduction and i < 2 else 1) for node in nodes for op, i in node
        )

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        drop_prob: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]  # 2 x (B, c, H, W)
        first = 0
        for count in self.node_edges:
            total = None
            for k in range(first, first + count):
                h = self.ops[k](states[self.inputs[k]])
                if self.training and drop_prob > 0 and not isinstance(self.ops[k], nn.Identity):
                    h = drop_path(h, drop_prob, generator)
                total = h if total is None else total + h
            if total is None:  # every edge of the node was dropped: zeros at the output resolution
                total = self.empty(states[1])
            first += count
            states.append(total)  # (B, c, H', W')
        return torch.cat([states[i] for i in self.concat], dim=1)  # (B, len(concat) * c, H', W')


class AuxiliaryHead(nn.Module):
    """DARTS's CIFAR auxiliary classifier, applied to 8x8 feature maps."""

    def __init__(self, c: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, count_include_pad=False),  # 8x8 -> 2x2
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, 8, 8)
        return self.classifier(self.features(x))  # (B, num_classes)


class DartsNetwork(nn.Module):
    """The DARTS CIFAR evaluation network (``NetworkCIFAR``) for a genotype.

    Args:
        genotype: A DARTS genotype, or a :class:`~raynas.spaces._darts_nodes.NodeGenotype`
            (any number of edges per node, as SNAS derives; a node without edges gives zeros).
        num_classes: Classifier outputs (10 for CIFAR-10).
        channels: Initial channels ``C`` (36 in the paper).
        layers: Number of cells (20 in the paper).
        auxiliary: Add the auxiliary head (used in training with weight 0.4 in the paper).
        drop_path_prob: Drop-path probability in training; trainers usually raise it
            linearly to 0.2 over the epochs (the paper's schedule) by setting this attribute.
        seed: Seed of the network's own drop-path generator (``None``: nondeterministic).
    """

    def __init__(
        self,
        genotype: Genotype | NodeGenotype,
        num_classes: int = 10,
        channels: int = 36,
        layers: int = 20,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
        seed: int | None = None,
    ):
        super().__init__()
        self.drop_path_prob = drop_path_prob
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        c_curr = 3 * channels  # stem multiplier 3
        self.stem = nn.Sequential(
            nn.Conv2d(3, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr)
        )
        c_pp, c_p, c_curr = c_curr, c_curr, channels
        cells = nodes_of(genotype)
        self.cells = nn.ModuleList()
        reductions = {layers // 3, 2 * layers // 3}
        reduction_prev = False
        self.aux_index = 2 * layers // 3
        c_aux = c_p
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c_curr *= 2
            nodes = cells.reduce if reduction else cells.normal
            concat = CONCAT
            if isinstance(genotype, Genotype):
                concat = genotype.reduce_concat if reduction else genotype.normal_concat
            cell = DartsCell(nodes, concat, c_pp, c_p, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, len(cell.concat) * c_curr
            if i == self.aux_index:
                c_aux = c_p
        self.auxiliary = AuxiliaryHead(c_aux, num_classes) if auxiliary else None
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c_p, num_classes)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and, in training with an auxiliary head, the auxiliary logits (else None)."""
        s0 = s1 = self.stem(x)  # (B, 3C, H, W)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob, self.generator)
            if i == self.aux_index and self.auxiliary is not None and self.training:
                aux = self.auxiliary(s1)  # (B, num_classes)
        return self.classifier(self.pool(s1)), aux  # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        return self.forward_with_aux(x)[0]  # (B, num_classes)
