"""DNAS's two ways of finding new latent codes: dense sampling (Eq. 4) and latent optimisation (Eq. 7).

Dense sampling looks where the best cells live. For every latent dimension ``s`` it takes the
``z_s`` of the top-k evaluated cells and widens each by ``+/- sigma``; the union of those
intervals is the dense region ``R_s``. Algorithm 1 draws the unlabelled set from the product of the
regions (share ``epsilon_1``), from around the codes at the edge of the FLOPs limit (``epsilon_2``)
and from the whole space (``epsilon_3``).

Latent optimisation moves the codes of the best cells uphill on the accuracy predictor and
downhill on the FLOPs predictor: ``z' = z + eta1 * d f_acc/dz - eta2 * d f_flops/dz``.

Everything here is pure (numpy arrays in and out, randomness from the generator passed in),
apart from :func:`latent_step`, which differentiates the controller's predictors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: A closed interval ``(low, high)``; a region is a sorted list of disjoint intervals.
Interval = tuple[float, float]
Region = list[Interval]


def dense_region(values: Sequence[float], sigma: float) -> Region:
    """The union of ``[v - sigma, v + sigma]`` over ``values``, as sorted disjoint intervals.

    Example (the paper's worked example):
        >>> [(round(a, 2), round(b, 2)) for a, b in dense_region([-0.28, -0.16, -0.19], 0.05)]
        [(-0.33, -0.11)]
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    spans = sorted((float(v) - sigma, float(v) + sigma) for v in values)
    merged: Region = []
    for low, high in spans:
        if merged and low <= merged[-1][1] + 1e-12:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def dense_regions(z_top: np.ndarray, sigma: float | np.ndarray) -> list[Region]:
    """One region per latent dimension from the codes ``(k, S)`` of the top-k cells (Eq. 4).

    ``sigma`` is one width for every dimension or a width per dimension ``(S,)``.
    """
    z_top = np.atleast_2d(np.asarray(z_top, dtype=np.float64))
    widths = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (z_top.shape[1],))
    return [dense_region(z_top[:, s], float(widths[s])) for s in range(z_top.shape[1])]


def region_length(region: Region) -> float:
    return float(sum(high - low for low, high in region))


def sample_region(region: Region, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` draws, uniform over the union of intervals (a point region gives that point)."""
    lengths = np.array([high - low for low, high in region], dtype=np.float64)
    total = lengths.sum()
    if total <= 0:
        return np.full(size, region[0][0])
    u = rng.random(size) * total
    edges = np.cumsum(lengths)
    which = np.minimum(np.searchsorted(edges, u, side="right"), len(region) - 1)
    starts = np.array([low for low, _ in region])
    offset = u - np.concatenate([[0.0], edges[:-1]])[which]
    return starts[which] + offset


def sample_product(regions: list[Region], rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, S)`` codes from the product of the per-dimension regions."""
    return np.stack([sample_region(r, rng, size) for r in regions], axis=1)


def code_spread(codes: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """Per-dimension spread ``(S,)`` of codes ``(N, S)``: their standard deviation, floored.

    Dense regions are measured in this unit, so that ``sigma`` means the same whatever scale
    a trained encoder happens to give its means (a posterior-collapsed dimension, whose means
    barely move, gets an interval just as narrow).
    """
    codes = np.atleast_2d(np.asarray(codes, dtype=np.float64))
    if len(codes) < 2:
        return np.full(codes.shape[1], 1.0)
    return np.maximum(codes.std(axis=0), floor)


def jitter(codes: np.ndarray, rng: np.random.Generator, n: int, sigma: np.ndarray | float) -> np.ndarray:
    """``n`` codes, each a uniformly chosen row of ``codes`` ``(E, S)`` plus ``N(0, sigma^2)`` noise."""
    codes = np.atleast_2d(np.asarray(codes, dtype=np.float64))
    if n <= 0 or len(codes) == 0:
        return np.zeros((0, codes.shape[1]))
    pick = rng.integers(len(codes), size=n)
    return codes[pick] + np.asarray(sigma) * rng.standard_normal((n, codes.shape[1]))


def share_sizes(m: int, eps_dense: float, eps_edge: float) -> tuple[int, int, int]:
    """Eq. 4's three shares of ``m`` draws: ``(dense, edge, whole)`` with ``whole = m - dense - edge``."""
    if eps_dense < 0 or eps_edge < 0 or eps_dense + eps_edge > 1 + 1e-9:
        raise ValueError(f"need eps_dense, eps_edge >= 0 with sum <= 1, got {eps_dense}, {eps_edge}")
    dense = int(round(eps_dense * m))
    edge = min(int(round(eps_edge * m)), m - dense)
    return dense, edge, m - dense - edge


def ascent_direction(model: torch.nn.Module, z: torch.Tensor, eta_acc: float, eta_cost: float) -> torch.Tensor:
    """Eq. 7's move per unit step at codes ``(B, S)``: ``eta1 * df_acc/dz - eta2 * df_flops/dz``.

    NAO's step schedule then tries ``z + t * direction`` for ``t = 1, 2, ...`` (the gradient is
    taken once, at the starting code).
    """
    return latent_step(model, z, eta_acc, eta_cost) - z.detach()


def latent_step(
    model: torch.nn.Module, z: torch.Tensor, eta_acc: float, eta_cost: float
) -> torch.Tensor:
    """One step of paper Eq. 7 on codes ``(B, S)``: ``z + eta1 * df_acc/dz - eta2 * df_flops/dz``.

    ``model.predict(z)`` must return ``(acc (B,), cost (B,))``; rows are independent, so the
    gradient of the sum is each row's own gradient.
    """
    z = z.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        acc, cost = model.predict(z)
        objective = eta_acc * acc.sum()
        if eta_cost:
            objective = objective - eta_cost * cost.sum()
        (grad,) = torch.autograd.grad(objective, z)
    return (z + grad).detach()


def edge_codes(codes: np.ndarray, cost: np.ndarray, limit: float, band: float) -> np.ndarray:
    """Codes whose predicted cost lies in ``[limit * (1 - band), limit]`` (just under the limit).

    Falls back to the ``max(4, 5%)`` codes with the largest cost under the limit when the band
    is empty, and to an empty array when nothing is under the limit.
    """
    under = np.flatnonzero(cost <= limit)
    if len(under) == 0:
        return codes[:0]
    near = under[cost[under] >= limit * (1.0 - band)]
    if len(near) == 0:
        k = max(4, len(under) // 20)
        near = under[np.argsort(-cost[under])[:k]]
    return codes[near]
