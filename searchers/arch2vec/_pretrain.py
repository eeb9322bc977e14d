"""Unsupervised pretraining of arch2vec, its quality metrics, and the per-space embedding cache.

arch2vec learns the embedding before the search, without labels (Yan et al., 2020, Sec. 3):
on every cell of a space small enough to enumerate (NAS-Bench-201, NAS-Bench-Macro,
NAS-Bench-Graph) and on a large random sample of the others (NAS-Bench-101, DARTS). Cells are
taken up to isomorphism: one canonical representative per key (the first in enumeration or
sampling order), so that cells with the same key share one embedding.

The result (model weights, the pool's keys, token sequences and embeddings, and the Table 1
metrics) is cached once per space and option set in ``<cache>/arch2vec/<space>-<hash>.pt``,
where ``<cache>`` is ``$RAYNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/raynas``, else
``~/.cache/raynas``. It is written atomically as plain data (:func:`raynas._state.dump_state`)
and read once per process (a module-level memo), so that every study and seed, and every
worker process, reuses it instead of pretraining again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raynas._errors import InvalidArchitectureError
from raynas._state import StateFileError, dump_state, load_state
from raynas.searchers._config import require
from raynas.searchers._neural._gin import build_seeded, graph_batch
from raynas.searchers._neural._seq2seq import make_adam, tensor_state, torch_threads
from raynas.searchers.arch2vec._model import Arch2VecVAE, VAEShape
from raynas.spaces import Arch, Space

#: Bumped whenever the cached content or the training procedure changes (part of the hash).
CACHE_FORMAT = 1
#: Sample size where a space cannot be enumerated (NAS-Bench-101, DARTS).
DEFAULT_SAMPLE = 50_000
#: The paper's Table 1 (reconstruction accuracy, validity, uniqueness, in %).
PAPER_TABLE1 = {"nasbench101": (100.0, 51.33, 99.36), "nasbench201": (100.0, 79.41, 98.72),
                "darts": (99.79, 33.36, 100.0)}


@dataclass(frozen=True)
class PretrainOptions:
    """Everything that defines one cached embedding set; defaults from the paper and its code.

    Args:
        latent_size: Per-vertex latent size ``D`` (arch2vec: 16).
        hidden_size: GIN width (128).
        gin_layers: GIN layers ``L`` (4; the published code's ``hops=5`` gives 4 layers).
        mlp_layers: Linear layers of each GIN MLP (2).
        dropout: Dropout on ``z`` before decoding (0.3).
        lr: Adam's learning rate (1e-3).
        batch_size: Minibatch size (32).
        epochs: Training epochs (the paper: 8 to 10; the published code: 8).
        size: Cells to train on; None is every cell of an enumerable space, else
            :data:`DEFAULT_SAMPLE` sampled cells. The embedded pool is always the whole space
            where it can be enumerated.
        holdout: Share of the training cells held out to measure reconstruction (the code: 10%).
        latent_points: Prior draws that measure validity and uniqueness (the code: 10,000).
        seed: Seed of the pretraining; fixed, so that a cache is the same on every machine.
    """

    latent_size: int = 16
    hidden_size: int = 128
    gin_layers: int = 4
    mlp_layers: int = 2
    dropout: float = 0.3
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 10
    size: int | None = None
    holdout: float = 0.1
    latent_points: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("latent_size", "hidden_size", "gin_layers", "mlp_layers", "batch_size"):
            require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        require(self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}")
        require(self.size is None or self.size >= 2, f"size must be >= 2 or null, got {self.size}")
        require(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(0.0 <= self.holdout < 1.0, f"holdout must be in [0, 1), got {self.holdout}")
        require(self.latent_points >= 0, f"latent_points must be >= 0, got {self.latent_points}")

    def digest(self, space: Space) -> str:
        """Hash of the options, the space's options and :data:`CACHE_FORMAT`."""
        blob = json.dumps({"options": dataclasses.asdict(self), "space": space.options,
                           "format": CACHE_FORMAT}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    """``$RAYNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/raynas``, else ``~/.cache/raynas``."""
    if os.environ.get("RAYNAS_CACHE_DIR"):
        return Path(os.environ["RAYNAS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "raynas"


def cache_path(space: Space, options: PretrainOptions, folder: str | os.PathLike | None = None) -> Path:
    root = Path(folder) if folder else cache_dir()
    return root / "arch2vec" / f"{space.name}-{options.digest(space)}.pt"


# ---------------------------------------------------------------------- the embedded pool
class Embeddings:
    """A pretrained arch2vec: the model and the embeddings of a pool of canonical cells.

    Attributes:
        keys: The pool's keys, in order (one cell per key).
        tokens: ``(P, L)`` ``space.to_sequence`` of each pool cell (how its arch is rebuilt).
        z: ``(P, D)`` float32 embeddings (the mean of the vertices' ``mu``).
        metrics: Table 1's metrics and the pretraining time (see :func:`pretrain`).
    """

    def __init__(self, space: Space, options: PretrainOptions, state: dict[str, Any]):
        self.space, self.options = space, options
        self.keys: list[str] = list(state["keys"])
        self.tokens = np.asarray(state["tokens"], dtype=np.int64)
        self.z = np.asarray(state["z"], dtype=np.float32)
        self.metrics: dict[str, Any] = dict(state["metrics"])
        self.model_state: dict[str, torch.Tensor] = state["model"]
        self.n_ops = int(state["n_ops"])
        self.index = {k: i for i, k in enumerate(self.keys)}
        self._model: Arch2VecVAE | None = None

    def state(self) -> dict[str, Any]:
        return {"keys": self.keys, "tokens": self.tokens, "z": self.z, "metrics": self.metrics,
                "model": self.model_state, "n_ops": self.n_ops}

    def arch(self, i: int) -> Arch:
        return self.space.from_sequence([int(t) for t in self.tokens[i]])

    @property
    def model(self) -> Arch2VecVAE:
        if self._model is None:
            model = _new_model(self.options, self.n_ops, torch.Generator().manual_seed(0))
            model.load_state_dict(self.model_state)
            self._model = model.eval()
        return self._model

    def embed(self, archs: list[Arch]) -> np.ndarray:
        """``(len(archs), D)`` embeddings: the pool's where a key is in it, else encoded now."""
        out = np.zeros((len(archs), self.z.shape[1]), dtype=np.float32)
        missing = []
        for j, arch in enumerate(archs):
            i = self.index.get(self.space.key(arch))
            if i is None:
                missing.append(j)
            else:
                out[j] = self.z[i]
        if missing:
            out[missing] = encode(self.model, self.space, [archs[j] for j in missing])
        return out


def _new_model(options: PretrainOptions, n_ops: int, gen: torch.Generator) -> Arch2VecVAE:
    shape = VAEShape(n_ops, options.latent_size, options.hidden_size, options.gin_layers,
                     options.mlp_layers, options.dropout)
    return build_seeded(lambda: Arch2VecVAE(shape), gen)  # type: ignore[return-value]


@torch.no_grad()
def encode(model: Arch2VecVAE, space: Space, archs: list[Arch], chunk: int = 4096) -> np.ndarray:
    """``(len(archs), D)`` embeddings of cells (as given: pass canonical representatives)."""
    parts = []
    for i in range(0, len(archs), chunk):
        ops, adj = graph_batch([space.to_graph(a) for a in archs[i : i + chunk]])
        parts.append(model.embed(ops, adj).numpy())
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, model.shape.latent_size), np.float32)


def canonical_cells(space: Space, size: int | None, rng: np.random.Generator) -> tuple[list[Arch], list[Arch]]:
    """``(training cells, pool)``, one cell per key.

    An enumerable space's pool is all of it, in enumeration order, and its training cells are
    the pool or, with ``size``, a random subset of the pool. Otherwise both are the same sample
    of ``size`` (default :data:`DEFAULT_SAMPLE`) cells with distinct keys.
    """
    try:
        everything = space.enumerate()
        first: dict[str, Arch] = {}
        for arch in everything:
            first.setdefault(space.key(arch), arch)
    except NotImplementedError:
        want = DEFAULT_SAMPLE if size is None else size
        found: dict[str, Arch] = {}
        for _ in range(50 * want):
            if len(found) >= want:
                break
            arch = space.sample(rng)
            found.setdefault(space.key(arch), arch)
        cells = list(found.values())
        return cells, cells
    pool = list(first.values())
    if size is None or size >= len(pool):
        return pool, pool
    rows = np.sort(rng.choice(len(pool), size=size, replace=False))
    return [pool[int(r)] for r in rows], pool


# ---------------------------------------------------------------------- pretraining
def pretrain(space: Space, options: PretrainOptions, progress: bool = True,
             num_threads: int | None = 1) -> Embeddings:
    """Pretrain arch2vec on ``space`` (Eq. 5, Adam, minibatches) and embed its pool.

    Runs on ``num_threads`` torch threads (one is fastest for these small batches on shared
    cores; None keeps torch's setting) and shows a progress bar unless ``progress`` is False.

    Every random choice (the sample, the held-out split, initial weights, minibatch order,
    reparameterisation noise, dropout, prior draws) comes from ``options.seed``, so that the
    same options give the same cache on every machine.
    """
    with torch_threads(num_threads):
        return _pretrain(space, options, progress)


def _pretrain(space: Space, options: PretrainOptions, progress: bool) -> Embeddings:
    from tqdm.auto import tqdm

    start = time.perf_counter()
    rng = np.random.default_rng(options.seed)
    gen = torch.Generator().manual_seed(options.seed)
    train_cells, pool = canonical_cells(space, options.size, rng)
    ops, adj = graph_batch([space.to_graph(a) for a in train_cells])  # (M, N, F), (M, N, N)
    perm = rng.permutation(len(train_cells))
    n_test = int(round(options.holdout * len(train_cells)))
    test_idx, train_idx = torch.as_tensor(perm[:n_test]), torch.as_tensor(perm[n_test:])
    model = _new_model(options, ops.shape[-1], gen)
    model.train()
    optimizer = make_adam(model, options.lr, 0.0)
    per_epoch = -(-len(train_idx) // options.batch_size)
    bar = tqdm(total=options.epochs * per_epoch, desc=f"arch2vec pretraining on {space.name}",
               unit="batch", mininterval=1.0, disable=not progress)
    losses = []
    for _ in range(options.epochs):
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        total = 0.0
        for i in range(0, len(order), options.batch_size):
            rows = order[i : i + options.batch_size]
            loss = model.loss(ops[rows], adj[rows], gen)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # as the published code
            optimizer.step()
            total += loss.item() * len(rows)
            bar.update(1)
        losses.append(total / max(1, len(order)))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    bar.close()
    train_seconds = time.perf_counter() - start
    model.eval()
    metrics = measure(model, space, ops, adj, train_idx, test_idx, options.latent_points, gen)
    z = encode(model, space, pool)
    metrics.update(train_seconds=train_seconds, total_seconds=time.perf_counter() - start,
                   n_train=len(train_idx), n_test=len(test_idx), n_pool=len(pool), losses=losses)
    state = {"keys": [space.key(a) for a in pool],
             "tokens": np.array([space.to_sequence(a) for a in pool], dtype=np.int64),
             "z": z, "metrics": metrics, "model": tensor_state(model.state_dict()), "n_ops": ops.shape[-1]}
    return Embeddings(space, options, state)


@torch.no_grad()
def measure(model: Arch2VecVAE, space: Space, ops: torch.Tensor, adj: torch.Tensor,
            train_idx: torch.Tensor, test_idx: torch.Tensor, points: int, gen: torch.Generator) -> dict[str, Any]:
    """The paper's Table 1 metrics, in %.

    * reconstruction accuracy on the held-out cells, decoded from ``mu``: the share of correct
      vertex ops and of correct upper-triangle adjacency entries (the published code's two
      accuracies; ``reconstruction_accuracy`` is the lower of the two), and the share of cells
      reconstructed exactly;
    * validity: the share of ``points`` draws ``z ~ N(mean, std)`` (per vertex position and
      latent dimension, over the training cells' ``mu``, as in the published code) that decode
      to a cell of the space;
    * uniqueness: distinct keys among the valid decodings, over the valid decodings.
    """
    out: dict[str, Any] = {}
    n = ops.shape[1]
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    if len(test_idx):
        mu, _ = model.encode(ops[test_idx], adj[test_idx])  # (T, N, D)
        ops_hat, adj_hat = model.reconstruct(mu)
        ops_ok = ops_hat == ops[test_idx].argmax(-1)  # (T, N)
        adj_ok = adj_hat[:, upper] == adj[test_idx][:, upper].to(torch.int8)  # (T, E)
        out["ops_accuracy"] = 100.0 * float(ops_ok.float().mean())
        out["adj_accuracy"] = 100.0 * float(adj_ok.float().mean())
        out["reconstruction_accuracy"] = min(out["ops_accuracy"], out["adj_accuracy"])
        out["exact_reconstruction"] = 100.0 * float((ops_ok.all(1) & adj_ok.all(1)).float().mean())
    decode = _decoder(space) if points else None
    if decode is not None:
        mus = torch.cat([model.encode(ops[train_idx[i : i + 4096]], adj[train_idx[i : i + 4096]])[0]
                         for i in range(0, len(train_idx), 4096)])  # (M, N, D)
        z = torch.randn((points, n, mus.shape[-1]), generator=gen) * mus.std(0) + mus.mean(0)
        ops_hat, adj_hat = model.reconstruct(z)
        keys = [decode(o, a) for o, a in zip(ops_hat.numpy(), adj_hat.numpy())]
        valid = [k for k in keys if k is not None]
        out["validity"] = 100.0 * len(valid) / points
        out["uniqueness"] = 100.0 * len(set(valid)) / max(1, len(valid))
        if space.name == "nasbench201":
            out.update(_published_nb201(ops_hat.numpy(), adj_hat.numpy(), space))
    return out


def _published_nb201(op_classes: np.ndarray, adj: np.ndarray, space: Space) -> dict[str, float]:
    """NAS-Bench-201 validity and uniqueness as the published code measures them (Table 1).

    There a decoding is valid when its first vertex is the input, its last the output and the
    six between are ops; the adjacency is not checked. Uniqueness counts distinct
    ``graph_util.hash_module`` fingerprints (op labels and decoded adjacency) among the valid
    decodings. Our ``validity`` also requires the decoded graph to be NB201's fixed cell graph.
    """
    from raynas.spaces._nasbench201 import OPS
    from raynas.spaces._nb101_cell import graph_hash

    n_ops = len(OPS)  # to_graph's op columns: OPS..., input, output
    ok = (op_classes[:, 0] == n_ops) & (op_classes[:, -1] == n_ops + 1) & (op_classes[:, 1:-1] < n_ops).all(1)
    prints = {graph_hash(np.triu(a, 1).tolist(), [int(c) for c in o]) for o, a, v in zip(op_classes, adj, ok) if v}
    return {"validity_published": 100.0 * float(ok.mean()),
            "uniqueness_published": 100.0 * len(prints) / max(1, int(ok.sum()))}


def _signature(op_classes: np.ndarray, adj: np.ndarray) -> bytes:
    return np.asarray(op_classes, np.int8).tobytes() + np.triu(np.asarray(adj, np.int8), 1).tobytes()


def _decoder(space: Space):
    """``(op classes (N,), adjacency (N, N)) -> key or None``: which decoded graphs are cells.

    An enumerable space looks the graph up among the graphs of all its encodings; NAS-Bench-101
    drops its padding vertices and validates the cell; other spaces have no decoder (None).
    """
    if space.name == "nasbench101":
        from raynas.spaces._nb101_cell import GRAPH_OPS

        def nb101(op_classes: np.ndarray, adj: np.ndarray) -> str | None:
            keep = [v for v, c in enumerate(op_classes) if c < len(GRAPH_OPS)]
            text = json.dumps({"matrix": adj[np.ix_(keep, keep)].tolist(),
                               "ops": [GRAPH_OPS[int(op_classes[v])] for v in keep]})
            try:
                return space.key(space.from_string(text))
            except (InvalidArchitectureError, ValueError):
                return None

        return nb101
    try:
        graphs = {}
        for arch in space.enumerate():
            a, o = space.to_graph(arch)
            cls = np.where(o.sum(1) > 0, o.argmax(1), o.shape[1])
            graphs[_signature(cls, a)] = space.key(arch)
    except NotImplementedError:
        return None
    return lambda op_classes, adj: graphs.get(_signature(op_classes, adj))


# ---------------------------------------------------------------------- the cache
_MEMO: dict[str, Embeddings] = {}
_LOCK = threading.Lock()
#: Counts of cache use in this process: ``memo`` (already loaded), ``file`` (read from the
#: cache file), ``pretrained`` (not cached: pretrained and written).
CACHE_STATS = {"memo": 0, "file": 0, "pretrained": 0}


def load_embeddings(space: Space, options: PretrainOptions, folder: str | os.PathLike | None = None,
                    progress: bool = True, num_threads: int | None = 1) -> Embeddings:
    """The cached :class:`Embeddings` of ``space`` and ``options``, pretrained on a miss.

    Within a process the first call reads the file and later calls share the object; a file
    that cannot be read (cut short, of an older format) is pretrained again and replaced.
    """
    path = cache_path(space, options, folder)
    with _LOCK:
        found = _MEMO.get(path.name)
        if found is not None:
            CACHE_STATS["memo"] += 1
            return found
        emb = None
        if path.is_file():
            try:
                emb = Embeddings(space, options, load_state(path))
                CACHE_STATS["file"] += 1
            except (StateFileError, KeyError, TypeError, ValueError, RuntimeError):
                emb = None
        if emb is None:
            emb = pretrain(space, options, progress, num_threads)
            dump_state(emb.state(), path)
            CACHE_STATS["pretrained"] += 1
        _MEMO[path.name] = emb
        return emb


def remember(emb: Embeddings) -> None:
    """Make ``emb`` this process's embeddings of its space and options, as if read from the cache.

    How a worker gets the embeddings the driver loaded once (through Ray's object store) instead
    of reading, or on a node without the cache file pretraining, its own copy. The memo is keyed
    by the cache file's name (space and option digest), so any cache folder finds it.
    """
    with _LOCK:
        _MEMO[cache_path(emb.space, emb.options).name] = emb


def clear_memo() -> None:
    """Forget the embeddings loaded in this process (the files stay)."""
    with _LOCK:
        _MEMO.clear()
