"""The NAS-Bench-101 network (Ying et al., ICML 2019): 3 stacks of 3 copies of one cell.

The rules follow the official ``model_builder``: a cell's output channels are split among the
interior vertices that feed the output (which are concatenated); other interior vertices take
the largest channel count they feed; the cell input reaches each interior vertex it feeds
through its own 1x1 conv-BN-ReLU projection, and, when it feeds the output directly, is
projected to the output channels and added. Interior edges whose source has one channel more
than the target are truncated. Trainable parameter counts equal the benchmark's
``trainable_parameters`` (BN has scale and shift, convs have no bias, the classifier has one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from raynas.spaces._nb101_cell import Cell101

#: Batch-norm momentum of the official TensorFlow code (decay 0.997) in PyTorch's convention.
BN_MOMENTUM = 1 - 0.997
BN_EPS = 1e-5


class ConvBNReLU(nn.Sequential):
    """Same-padded convolution without bias, batch norm, ReLU (the official ``conv_bn_relu``)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=False),
        )


#: Vertex ops by official name; each constructor takes the vertex channel count.
OPS: dict[str, Callable[[int], nn.Module]] = {
    "conv3x3-bn-relu": lambda c: ConvBNReLU(c, c, 3),
    "conv1x1-bn-relu": lambda c: ConvBNReLU(c, c, 1),
    "maxpool3x3": lambda c: nn.MaxPool2d(3, stride=1, padding=1),
}


def vertex_channels(
    in_channels: int, out_channels: int, matrix: Sequence[Sequence[int]]
) -> list[int]:
    """Channels of every vertex of a pruned cell (the official ``compute_vertex_channels``).

    Args:
        in_channels: Channels of the cell input.
        out_channels: Channels of the cell output.
        matrix: The pruned adjacency matrix, ``matrix[i][j] == 1`` for an edge ``i -> j``.

    Returns:
        One channel count per vertex, input first and output last.
    """
    n = len(matrix)
    out = n - 1
    channels = [0] * n
    channels[0], channels[out] = in_channels, out_channels
    if n == 2:
        return channels
    feeding = [v for v in range(1, out) if matrix[v][out]]  # interior vertices -> output
    share, extra = divmod(out_channels, len(feeding))
    for k, v in enumerate(feeding):  # the first `extra` of them get one more channel
        channels[v] = share + (1 if k < extra else 0)
    for v in range(n - 3, 0, -1):  # the others take the max over the vertices they feed
        if not matrix[v][out]:
            channels[v] = max(channels[d] for d in range(v + 1, out) if matrix[v][d])
    return channels


class Cell101Module(nn.Module):
    """One NAS-Bench-101 cell with ``in_channels`` in and ``out_channels`` out.

    Args:
        cell: A pruned cell (``space.prune(arch)``).
        in_channels: Channels of the cell input.
        out_channels: Channels of the cell output.
    """

    def __init__(self, cell: Cell101, in_channels: int, out_channels: int):
        super().__init__()
        self.matrix = [list(row) for row in cell.matrix]
        n = len(self.matrix)
        self.channels = vertex_channels(in_channels, out_channels, self.matrix)
        # Vertex v's op, and the projection of the input to v where the input feeds v.
        self.ops = nn.ModuleList(
            [nn.Identity()] + [OPS[cell.ops[v]](self.channels[v]) for v in range(1, n - 1)]
        )
        self.projections = nn.ModuleDict(
            {
                str(v): ConvBNReLU(in_channels, self.channels[v], 1)
                for v in range(1, n)
                if self.matrix[0][v]
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W)
        n = len(self.matrix)
        out = n - 1
        values = [x]
        for v in range(1, out):
            c = self.channels[v]
            inputs = [values[s][:, :c] for s in range(1, v) if self.matrix[s][v]]  # truncate
            if self.matrix[0][v]:
                inputs.append(self.projections[str(v)](x))
            values.append(self.ops[v](sum(inputs)))  # (B, c_v, H, W)
        concat = [values[v] for v in range(1, out) if self.matrix[v][out]]
        if not concat:  # input -> output only
            return self.projections[str(out)](x)  # (B, C_out, H, W)
        y = torch.cat(concat, dim=1)  # (B, C_out, H, W)
        if self.matrix[0][out]:
            y = y + self.projections[str(out)](x)
        return y


class NASBench101Network(nn.Module):
    """The NAS-Bench-101 network for a cell.

    Args:
        cell: A NAS-Bench-101 cell (pruned or not; it is pruned here).
        num_classes: Classifier outputs (10 for CIFAR-10).
        stem_channels: Channels of the 3x3 conv stem (128 in the paper).
        num_stacks: Stacks, each after the first starting with a 2x2 max pool and doubling
            the channels (3 in the paper).
        cells_per_stack: Cells per stack (3 in the paper).
    """

    def __init__(
        self,
        cell: Cell101,
        num_classes: int = 10,
        stem_channels: int = 128,
        num_stacks: int = 3,
        cells_per_stack: int = 3,
    ):
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU(3, stem_channels, 3)]
        c_in = c = stem_channels
        for stack in range(num_stacks):
            if stack > 0:
                layers.append(nn.MaxPool2d(2, stride=2))
                c *= 2
            for _ in range(cells_per_stack):
                layers.append(Cell101Module(cell, c_in, c))
                c_in = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        x = self.features(x)  # (B, 4 * stem_channels, H/4, W/4)
        return self.classifier(self.pool(x))  # (B, num_classes)
