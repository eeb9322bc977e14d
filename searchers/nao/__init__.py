"""NAO (Luo et al., 2018) and SemiNAS (Luo et al., 2020), the baselines of DNAS.

``NAOSearcher`` is the registry's ``"nao"`` and ``SemiNASSearcher`` its ``"seminas"``; the
controller loop and sequence helpers they share with DNAS live in
:mod:`raynas.searchers._neural`.
"""

from __future__ import annotations

from raynas.searchers.nao._model import NAOController, NAOControllerConfig
from raynas.searchers.nao._searcher import NAOConfig, NAOSearcher, SemiNASConfig, SemiNASSearcher

__all__ = [
    "NAOConfig",
    "NAOController",
    "NAOControllerConfig",
    "NAOSearcher",
    "SemiNASConfig",
    "SemiNASSearcher",
]
