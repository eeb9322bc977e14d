"""Cost counters: trainable parameters and multiply-add FLOPs of a network.

FLOPs follow the convention of NAS-Bench-Macro and most NAS papers: the multiply-adds of every
convolution and linear layer for one image at the given resolution, biases, normalisation,
activations and pooling excluded (biases optionally included). They are measured with forward hooks, so they follow the
real data flow (strides, groups, skipped branches) rather than the order of ``modules()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad``) of ``model``.

    Args:
        model: Any module; parameters on the ``meta`` device are counted too.

    Returns:
        The total element count of the trainable parameters.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _conv_macs(module: nn.Module, output: torch.Tensor, bias: bool) -> int:
    conv: nn.Conv2d = module  # type: ignore[assignment]
    per_output = (conv.in_channels // conv.groups) * conv.kernel_size[0] * conv.kernel_size[1]
    per_output += int(bias and conv.bias is not None)
    return output[0].numel() * per_output  # output[0]: (C_out, H_out, W_out) of one image


def _linear_macs(module: nn.Module, output: torch.Tensor, bias: bool) -> int:
    linear: nn.Linear = module  # type: ignore[assignment]
    per_output = linear.in_features + int(bias and linear.bias is not None)
    return output[0].numel() * per_output


_COUNTERS = {nn.Conv2d: _conv_macs, nn.Linear: _linear_macs}


@torch.no_grad()
def count_flops(
    model: nn.Module, input_shape: Sequence[int] = (3, 32, 32), bias: bool = False
) -> int:
    """Multiply-adds of the conv and linear layers of ``model`` for one image.

    Runs one forward pass in eval mode on a batch of one zero image on the model's device
    (``meta`` works and is fastest), then restores the training flag.

    Args:
        model: The network.
        input_shape: ``(C, H, W)`` of one input image.
        bias: Also count one addition per output of a layer with a bias. NAS-Bench-Macro
            leaves biases out; NAS-Bench-201's counter (in MFLOPs) includes them.

    Returns:
        Multiply-adds of one forward pass of one image.
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _COUNTERS[type(module)](module, output, bias)

    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in _COUNTERS]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros((1, *input_shape), device=device))  # (1, C, H, W)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return int(total)
