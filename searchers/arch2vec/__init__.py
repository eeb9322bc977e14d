"""arch2vec (Yan et al., NeurIPS 2020): search on unsupervised architecture embeddings.

A variational graph isomorphism autoencoder is pretrained once per space, without labels
(:mod:`._model`, :mod:`._pretrain`), and its embeddings are cached; ``"arch2vec-bo"``
(:class:`Arch2VecBOSearcher`) and ``"arch2vec-rl"`` (:class:`Arch2VecRLSearcher`) search on them.
"""

from __future__ import annotations

from raynas.searchers.arch2vec._model import Arch2VecVAE, VAEShape
from raynas.searchers.arch2vec._pretrain import (
    CACHE_STATS,
    PAPER_TABLE1,
    Embeddings,
    PretrainOptions,
    cache_dir,
    cache_path,
    clear_memo,
    load_embeddings,
    pretrain,
)
from raynas.searchers.arch2vec._searcher import (
    Arch2VecBOConfig,
    Arch2VecBOSearcher,
    Arch2VecConfig,
    Arch2VecRLConfig,
    Arch2VecRLSearcher,
)

__all__ = [
    "CACHE_STATS",
    "PAPER_TABLE1",
    "Arch2VecBOConfig",
    "Arch2VecBOSearcher",
    "Arch2VecConfig",
    "Arch2VecRLConfig",
    "Arch2VecRLSearcher",
    "Arch2VecVAE",
    "Embeddings",
    "PretrainOptions",
    "VAEShape",
    "cache_dir",
    "cache_path",
    "clear_memo",
    "load_embeddings",
    "pretrain",
]
