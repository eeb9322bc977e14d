"""DNAS's two ways of finding new latent codes: dense sampling (Eq. 4) and latent optimisation (Eq. 7).

Dense sampling looks where the best cells live. For every latent dimension ``s`` it takes the
``z_s`` of the top-k evaluated cells and widens each by ``+/- sigma``; the union of those
intervals is the dense region ``R_s``. New codes are drawn from the product of the regions, from
the edge of the FLOPs limit, or from the prior ``N(0, I)``.

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


def dense_regions(z_top: np.ndarray, sigma: float) -> list[Region]:
    """One region per latent dimension from the codes ``(k, S)`` of the top-k cells."""
    z_top = np.atleast_2d(np.asarray(z_top, dtype=np.float64))
    return [dense_region(z_top[:, s], sigma) for s in range(z_top.shape[1])]


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


def sample_latents(
    n: int,
    latent_size: int,
    rng: np.random.Generator,
    regions: list[Region] | None,
    edge_codes: np.ndarray | None,
    eps_dense: float,
    eps_edge: float,
    sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Paper Eq. 4's mixture: dense region w.p. ``eps_dense``, FLOPs edge w.p. ``eps_edge``, else prior.

    Args:
        n: Number of codes.
        latent_size: ``S``.
        rng: Source of randomness.
        regions: Per-dimension dense regions, or None (their mass goes to the prior).
        edge_codes: ``(E, S)`` codes of cells whose predicted FLOPs lie just under the limit, or
            None / empty (their mass goes to the prior). A draw picks one and adds
            ``N(0, sigma^2)`` noise.
        eps_dense: ``epsilon_1``.
        eps_edge: ``epsilon_2``; the prior gets ``1 - epsilon_1 - epsilon_2``.
        sigma: Width of the dense intervals and of the edge noise.

    Returns:
        ``(codes (n, S), source (n,))`` with source 0 = prior, 1 = dense, 2 = edge.
    """
    if eps_dense < 0 or eps_edge < 0 or eps_dense + eps_edge > 1 + 1e-9:
        raise ValueError(f"need eps_dense, eps_edge >= 0 with sum <= 1, got {eps_dense}, {eps_edge}")
    u = rng.random(n)
    source = np.zeros(n, dtype=np.int64)
    if regions is not None:
        source[u < eps_dense] = 1
    if edge_codes is not None and len(edge_codes):
        source[(u >= eps_dense) & (u < eps_dense + eps_edge)] = 2
    z = rng.standard_normal((n, latent_size))
    dense = np.flatnonzero(source == 1)
    if len(dense):
        z[dense] = sample_product(regions, rng, len(dense))  # type: ignore[arg-type]
    edge = np.flatnonzero(source == 2)
    if len(edge):
        pick = rng.integers(len(edge_codes), size=len(edge))  # type: ignore[arg-type]
        z[edge] = edge_codes[pick] + sigma * rng.standard_normal((len(edge), latent_size))  # type: ignore[index]
    return z, source


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
