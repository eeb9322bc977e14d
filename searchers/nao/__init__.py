"""NAO (Luo et al., 2018) and SemiNAS (Luo et al., 2020), the baselines of DNAS.

``NAOSearcher`` is the registry's ``"nao"`` and ``SemiNASSearcher`` its ``"seminas"``. The
private modules also hold what DNAS shares with them: the sequence helpers (``_seq2seq``) and
the train-generate loop (``_loop``).
"""

from __future__ import annotations

from raynas.searchers.nao._loop import ControllerSearcher
from raynas.searchers.nao._model import NAOConfig, NAOController
from raynas.searchers.nao._searcher import NAOSearcher, NAOSettings, SemiNASSearcher

__all__ = [
    "ControllerSearcher",
    "NAOConfig",
    "NAOController",
    "NAOSearcher",
    "NAOSettings",
    "SemiNASSearcher",
]
