"""Ops that several network families share (NAS-Bench-201 and DARTS use the same two)."""

from __future__ import annotations

import torch
from torch import nn


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution without bias, batch norm (the benchmarks' ``ReLUConvBN``).

    ``affine=False`` drops the batch norm's scale and shift, as DARTS's search network does.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros at the output resolution (``stride`` 2 halves it)."""

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)  # (B, C, H / s, W / s)
