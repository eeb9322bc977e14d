"""Neural machinery shared by the controller-based searchers (NAO, SemiNAS, DNAS and later ones).

Private to :mod:`raynas.searchers`: strategies import from here, never from a sibling
strategy's private modules.

* :mod:`._seq2seq`: architectures as token tensors, modules built from an owned
  ``torch.Generator``, masked decoding with bounded repair, minibatch training, target
  normalisation and SemiNAS's pseudo-labelled training set;
* :mod:`._gin`: a graph isomorphism network over ``space.to_graph`` cells (arch2vec's
  encoder), dense graph batches and seeded initialisation of modules with batch norms;
* :mod:`._loop`: :class:`ControllerSearcher`, the iterate-train-generate loop of NAO, SemiNAS
  and DNAS's Algorithm 1.
"""

from __future__ import annotations

from raynas.searchers._neural._gin import GINEncoder, build_seeded, graph_batch
from raynas.searchers._neural._loop import ControllerSearcher, check_loop_sizes
from raynas.searchers._neural._seq2seq import (
    ENCODE_CHUNK,
    DecodeStats,
    Normaliser,
    build_module,
    decode_archs,
    dropout,
    encode_archs,
    fit_semi_supervised,
    make_adam,
    mask_tensor,
    pick_tokens,
    resolve_device,
    sample_unlabeled,
    tensor_state,
    torch_generator,
    torch_threads,
    train_epochs,
)

__all__ = [
    "ENCODE_CHUNK",
    "ControllerSearcher",
    "DecodeStats",
    "GINEncoder",
    "Normaliser",
    "build_module",
    "build_seeded",
    "check_loop_sizes",
    "decode_archs",
    "dropout",
    "encode_archs",
    "fit_semi_supervised",
    "graph_batch",
    "make_adam",
    "mask_tensor",
    "pick_tokens",
    "resolve_device",
    "sample_unlabeled",
    "tensor_state",
    "torch_generator",
    "torch_threads",
    "train_epochs",
]
