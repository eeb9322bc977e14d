"""DNAS: Disentangled Neural Architecture Search (Zheng, Wang, Wang & Shi).

``DNASSearcher`` is the registry's ``"dnas"``; the controller and the pure latent-space helpers
(dense regions of Eq. 4, the Eq. 7 step) are public for tests and for :func:`explain`, which reads a saved DNAS study and
shows what its latent dimensions control (``raynas explain``).
"""

from __future__ import annotations

from raynas.searchers.dnas._controller import (
    ControllerConfig,
    DNASController,
    LossWeights,
    latent_size_rule,
)
from raynas.searchers.dnas._disentangle import attributes, disentanglement
from raynas.searchers.dnas._explain import explain, load_searcher
from raynas.searchers.dnas._latent import (
    Interval,
    Region,
    ascent_direction,
    code_spread,
    dense_region,
    dense_regions,
    edge_codes,
    jitter,
    latent_step,
    sample_product,
    sample_region,
    share_sizes,
)
from raynas.searchers.dnas._searcher import DNASConfig, DNASSearcher

__all__ = [
    "ControllerConfig",
    "DNASConfig",
    "DNASController",
    "DNASSearcher",
    "Interval",
    "LossWeights",
    "Region",
    "ascent_direction",
    "attributes",
    "code_spread",
    "dense_region",
    "dense_regions",
    "disentanglement",
    "edge_codes",
    "explain",
    "jitter",
    "latent_size_rule",
    "latent_step",
    "load_searcher",
    "sample_product",
    "sample_region",
    "share_sizes",
]
