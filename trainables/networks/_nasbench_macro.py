"""The NAS-Bench-Macro network (Su et al., CVPR 2021): 8 searchable MobileNetV2-style layers.

The fixed skeleton is the benchmark's: a 3x3 conv stem of 32 channels, three stages of 2, 3
and 3 searchable layers whose first layer halves the resolution and doubles the channels, and
a 1x1 conv to 1280 channels, global pooling and a linear classifier. Parameter and FLOPs counts
equal the benchmark table's ``params`` and ``flops`` (raw counts; FLOPs are conv and linear
multiply-adds at 32x32) for every one of the 6,561 cells.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from raynas.spaces._nasbench_macro import OPS as CHOICES
from raynas.spaces._nasbench_macro import ArchMacro


def _conv_bn(c_in: int, c_out: int, kernel_size: int, stride: int = 1, groups: int = 1) -> list:
    return [
        nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]


class IdentityLayer(nn.Module):
    """The ``Identity`` choice; a 1x1 conv-BN where it must change stride or channels."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        reshape = stride != 1 or c_in != c_out
        self.body = nn.Sequential(*_conv_bn(c_in, c_out, 1, stride)) if reshape else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W)
        return self.body(x)  # (B, C_out, H / stride, W / stride)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, depthwise ``k x k``, linear 1x1 project (all with BN).

    The residual is added when the block keeps the shape.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int, kernel_size: int):
        super().__init__()
        hidden = c_in * expansion
        self.body = nn.Sequential(
            *_conv_bn(c_in, hidden, 1),
            nn.ReLU(inplace=True),
            *_conv_bn(hidden, hidden, kernel_size, stride, groups=hidden),
            nn.ReLU(inplace=True),
            *_conv_bn(hidden, c_out, 1),
        )
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W)
        out = self.body(x)  # (B, C_out, H / stride, W / stride)
        return out + x if self.residual else out


#: Layer choices by name (the space's ``OPS``); constructors take ``(c_in, c_out, stride)``.
OPS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "Identity": lambda c_in, c_out, stride: IdentityLayer(c_in, c_out, stride),
    "MB3_K3": lambda c_in, c_out, stride: InvertedResidual(c_in, c_out, stride, 3, 3),
    "MB6_K5": lambda c_in, c_out, stride: InvertedResidual(c_in, c_out, stride, 6, 5),
}


class NASBenchMacroNetwork(nn.Module):
    """The NAS-Bench-Macro network for 8 layer choices.

    Args:
        arch: Eight choices in {0: Identity, 1: MB3_K3, 2: MB6_K5}.
        num_classes: Classifier outputs (10 for CIFAR-10).
        init_channels: Stem channels (32 in the benchmark).
        stages: Searchable layers per stage ((2, 3, 3) in the benchmark).
        head_channels: Channels of the final 1x1 conv (1280 in the benchmark).
    """

    def __init__(
        self,
        arch: ArchMacro,
        num_classes: int = 10,
        init_channels: int = 32,
        stages: Sequence[int] = (2, 3, 3),
        head_channels: int = 1280,
    ):
        super().__init__()
        if len(arch) != sum(stages):
            raise ValueError(
                f"arch has {len(arch)} layers but stages {tuple(stages)} need {sum(stages)}"
            )
        self.stem = nn.Sequential(*_conv_bn(3, init_channels, 3), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        c = init_channels
        choices = iter(arch)
        for depth in stages:
            for i in range(depth):
                op = OPS[CHOICES[int(next(choices))]]
                if i == 0:  # first layer of a stage: stride 2, double the channels
                    layers.append(op(c, 2 * c, 2))
                    c *= 2
                else:
                    layers.append(op(c, c, 1))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            *_conv_bn(c, head_channels, 1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        x = self.stem(x)  # (B, 32, H, W)
        x = self.features(x)  # (B, 256, H/8, W/8)
        return self.classifier(self.head(x))  # (B, num_classes)
