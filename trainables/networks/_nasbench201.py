"""The NAS-Bench-201 network (Dong & Yang, ICLR 2020): 3 stages of cells joined by ResNet blocks.

The macro skeleton is the benchmark's ``TinyNetwork``: a 3x3 conv stem, ``N`` cells per stage at
``C``, ``2C`` and ``4C`` channels, a stride-2 residual block between stages, and a BN-ReLU,
global-pool, linear head. With the defaults (``C = 16``, ``N = 5``) parameter counts equal the
benchmark's: 0.073306 M for the all-``none`` cell and 1.531546 M for the all-``nor_conv_3x3`` cell
on CIFAR-10.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from raynas.spaces._nasbench201 import EDGES, Arch201
from raynas.trainables.networks._ops import ReLUConvBN, Zero

#: Cell ops by NAS-Bench-201 name; each constructor takes the channel count ``C``.
OPS: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda c: Zero(),
    "skip_connect": lambda c: nn.Identity(),
    "nor_conv_1x1": lambda c: ReLUConvBN(c, c, 1),
    "nor_conv_3x3": lambda c: ReLUConvBN(c, c, 3),
    "avg_pool_3x3": lambda c: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
}


class ResidualReduction(nn.Module):
    """The stride-2 ResNet basic block between stages.

    Two ``ReLUConvBN`` 3x3 convs (the first with stride 2) plus a shortcut of a 2x2 average
    pool and a 1x1 conv (no BN) that matches the channels.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W)
        return self.shortcut(x) + self.conv_b(self.conv_a(x))  # (B, C_out, H/2, W/2)


class Cell201(nn.Module):
    """The 4-node cell: node ``j`` sums ``op(node i)`` over the edges ``i -> j``, ``i < j``."""

    def __init__(self, arch: Arch201, channels: int):
        super().__init__()
        self.edges = EDGES
        self.ops = nn.ModuleList(OPS[op](channels) for op in arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        nodes = [x]
        for target in (1, 2, 3):
            nodes.append(
                sum(op(nodes[src]) for (src, dst), op in zip(self.edges, self.ops) if dst == target)
            )
        return nodes[-1]  # (B, C, H, W)


class NASBench201Network(nn.Module):
    """The NAS-Bench-201 ``TinyNetwork`` for a cell.

    Args:
        arch: Six op names, one per edge in official order.
        num_classes: Classifier outputs (10 for CIFAR-10).
        channels: Stem and first-stage channels ``C`` (16 in the paper).
        cells_per_stage: Cells per stage ``N`` (5 in the paper).
    """

    def __init__(
        self, arch: Arch201, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 5
    ):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(Cell201(arch, c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.BatchNorm2d(c), nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        x = self.stem(x)  # (B, C, H, W)
        x = self.cells(x)  # (B, 4C, H/4, W/4)
        return self.classifier(self.head(x))  # (B, num_classes)
