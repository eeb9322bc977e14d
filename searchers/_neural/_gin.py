"""A graph isomorphism network (GIN, Xu et al., 2019) over ``space.to_graph`` cells.

Cells come as dense batches: one-hot ops ``X`` of shape ``(B, N, F)`` and a directed adjacency
``A`` of shape ``(B, N, N)``. Layer ``k`` computes (arch2vec, Yan et al., 2020, Eq. 2)

    H^k = MLP^k((1 + eps^k) * H^(k-1) + Ã H^(k-1)),   Ã = A + Aᵀ,

followed by batch normalisation and a ReLU, as in the published arch2vec code. Symmetrising
the adjacency lets information flow both ways along the cell's edges. Every layer is
permutation-equivariant, so a readout that averages over vertices is invariant to relabelling.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn


def graph_batch(graphs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``to_graph`` outputs into ``(ops (B, N, F + 1), adj (B, N, N))`` float tensors.

    Column ``F`` of ``ops`` marks padding vertices (an all-zero op row, e.g. NAS-Bench-101's
    padded layout), so that every vertex has exactly one class to reconstruct.
    """
    adj = torch.as_tensor(np.stack([a for a, _ in graphs]), dtype=torch.float32)  # (B, N, N)
    ops = torch.as_tensor(np.stack([o for _, o in graphs]), dtype=torch.float32)  # (B, N, F)
    pad = (ops.sum(-1, keepdim=True) == 0).float()  # (B, N, 1)
    return torch.cat([ops, pad], dim=-1), adj


def _mlp(n_in: int, hidden: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(nn.Linear(n_in if i == 0 else hidden, hidden))
        if i < layers - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class GINEncoder(nn.Module):
    """``L`` GIN layers; returns per-vertex features ``(B, N, hidden)``.

    Args:
        n_in: Input features per vertex.
        hidden: Width of every layer (arch2vec: 128).
        layers: ``L`` (arch2vec: 4).
        mlp_layers: Linear layers in each ``MLP^k`` (arch2vec: 2).
    """

    def __init__(self, n_in: int, hidden: int, layers: int, mlp_layers: int = 2):
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(layers))
        self.mlps = nn.ModuleList(_mlp(n_in if k == 0 else hidden, hidden, mlp_layers) for k in range(layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(layers))

    def forward(self, ops: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        sym = adj + adj.transpose(1, 2)  # Ã = A + Aᵀ, (B, N, N)
        h = ops  # (B, N, F)
        b, n, _ = ops.shape
        for k, (mlp, norm) in enumerate(zip(self.mlps, self.norms)):
            agg = (1.0 + self.eps[k]) * h + sym @ h  # (B, N, H_in)
            h = torch.relu(norm(mlp(agg).reshape(b * n, -1))).reshape(b, n, -1)  # (B, N, H)
        return h


def init_linear(module: nn.Module, gen: torch.Generator) -> nn.Module:
    """Redraw every ``nn.Linear`` and ``nn.LSTMCell`` parameter from ``gen`` (PyTorch's bound
    ``1/sqrt(fan_in)``); batch norms and GIN's ``eps`` keep their fixed initial values."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.LSTMCell)):
                fan_in = m.in_features if isinstance(m, nn.Linear) else m.hidden_size
                bound = 1.0 / math.sqrt(max(1, fan_in))
                for p in m.parameters(recurse=False):
                    p.copy_(torch.empty(p.shape).uniform_(-bound, bound, generator=gen))
    return module


def build_seeded(factory: Callable[[], nn.Module], gen: torch.Generator) -> nn.Module:
    """``factory()`` built without touching the global RNG, its linear layers drawn from ``gen``."""
    with torch.random.fork_rng(devices=[]):
        module = factory()
    return init_linear(module, gen)
