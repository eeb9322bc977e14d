"""`Arch2VecBOSearcher` and `Arch2VecRLSearcher`: search on pretrained arch2vec embeddings.

Both search a pool of embedded cells: a partial table's candidates when given, else the whole
space where it can be enumerated, else the pretraining sample (Yan et al., 2020, Sec. 4). The
embeddings come from the per-space cache (:mod:`._pretrain`); they are never retrained for a
study. A searcher reads them at its first proposal (construction is cheap), and neither saves
them in its state nor pickles them (a restored or unpickled searcher reads them from the cache
again, once per process).

* arch2vec-BO: ``n_initial`` (16) random cells; then each round fits DNGO on the embeddings of
  the evaluated cells, scores every unseen pool cell by expected improvement and queues the
  top ``batch`` (5) for the next proposals.
* arch2vec-RL: REINFORCE in the latent space, as in the published code: an LSTM policy maps the
  current state (the embedding of the last cell) to the mean of a Gaussian action
  ``a ~ N(f(s), sigma^2 I)``; the proposal is the unseen pool cell nearest to ``a`` (L2), whose
  embedding becomes the next state. After each episode of ``batch`` (16) cells the policy takes
  one Adam step on ``-mean_t log pi(a_t | s_t) (R_t - b) / spread``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from raynas.searchers._base import ArchSearcher
from raynas.searchers._config import build_config, option, require
from raynas.searchers._neural._gin import build_seeded
from raynas.searchers._neural._seq2seq import tensor_state, torch_generator, torch_threads
from raynas.searchers.arch2vec._pretrain import (
    Embeddings,
    PretrainOptions,
    load_embeddings,
    remember,
)
from raynas.searchers.arch2vec._surrogate import Surrogate, expected_improvement
from raynas.spaces import Arch, Space

SURROGATES = ("dngo", "blr")


@dataclass(frozen=True)
class Arch2VecConfig:
    """Pretraining options shared by both searchers; defaults from the paper and its code.

    The ``pretrain_*`` fields, ``latent_size``, ``hidden_size``, ``gin_layers``, ``mlp_layers``
    and ``dropout`` define the cached embedding (one cache file per space and option set);
    ``cache_dir`` (default: ``$RAYNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/raynas``, else
    ``~/.cache/raynas``) and ``num_threads`` do not.
    """

    latent_size: int = option(16, "latent size of each vertex (the embedding's size)", "16 (Yan et al.)")
    hidden_size: int = option(128, "width of the GIN layers", "128 (Yan et al.)")
    gin_layers: int = option(4, "GIN layers of the encoder", "4 (Yan et al.)")
    mlp_layers: int = option(2, "linear layers in each GIN layer's MLP", "2 (arch2vec code)")
    dropout: float = option(0.3, "dropout on z before decoding, while pretraining", "0.3 (arch2vec code)")
    pretrain_lr: float = option(1e-3, "Adam learning rate of the pretraining", "1e-3 (Yan et al.)")
    pretrain_batch_size: int = option(32, "minibatch size of the pretraining", "32 (Yan et al.)")
    pretrain_epochs: int = option(10, "pretraining epochs", "8 to 10 (Yan et al.)")
    pretrain_size: int | None = option(
        None, "cells to pretrain on; null: the whole space if enumerable, else 50,000 sampled cells",
        "all cells of NB101, NB201 and a DARTS sample (Yan et al.)")
    pretrain_holdout: float = option(0.1, "share of the cells held out to measure reconstruction", "0.1 (arch2vec code)")
    pretrain_latent_points: int = option(10_000, "prior draws that measure validity and uniqueness",
                                         "10,000 (arch2vec code)")
    pretrain_seed: int = option(0, "seed of the pretraining (fixed: one cache per option set)")
    cache_dir: str | None = option(None, "cache folder; null: $RAYNAS_CACHE_DIR, $XDG_CACHE_HOME/raynas or ~/.cache/raynas")
    num_threads: int | None = option(1, "torch threads of pretraining and rounds; null: leave torch's setting")

    def __post_init__(self) -> None:
        self.pretrain_options()  # range checks of the pretraining fields
        require(self.num_threads is None or self.num_threads >= 1,
                f"num_threads must be >= 1 or null, got {self.num_threads}")

    def pretrain_options(self) -> PretrainOptions:
        return PretrainOptions(
            self.latent_size, self.hidden_size, self.gin_layers, self.mlp_layers, self.dropout,
            self.pretrain_lr, self.pretrain_batch_size, self.pretrain_epochs, self.pretrain_size,
            self.pretrain_holdout, self.pretrain_latent_points, self.pretrain_seed,
        )


@dataclass(frozen=True)
class Arch2VecBOConfig(Arch2VecConfig):
    """arch2vec-BO: the published code's 16 initial cells, top 5 per round, DNGO and EI."""

    n_initial: int = option(16, "random cells before the first round", "16 (arch2vec code)")
    batch: int = option(5, "cells of highest expected improvement queued per round", "5 (arch2vec code)")
    surrogate: str = option("dngo", "dngo (BLR on a network's features) or blr (BLR on the embeddings)",
                            "DNGO (arch2vec code)")
    dngo_hidden: int = option(50, "width of DNGO's 3 tanh layers", "50 (DNGO, Snoek et al.)")
    dngo_steps: int = option(200, "full-batch Adam steps of DNGO's network per round")
    dngo_lr: float = option(1e-2, "Adam learning rate of DNGO's network", "0.01 (pybnn's DNGO)")
    xi: float = option(0.0, "expected improvement's margin, in units of the metric")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_initial", "batch", "dngo_hidden"):
            require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        require(self.dngo_steps >= 0, f"dngo_steps must be >= 0, got {self.dngo_steps}")
        require(self.dngo_lr > 0, f"dngo_lr must be > 0, got {self.dngo_lr}")
        require(self.surrogate in SURROGATES, f"surrogate must be one of {SURROGATES}, got {self.surrogate!r}")
        require(self.xi >= 0, f"xi must be >= 0, got {self.xi}")


@dataclass(frozen=True)
class Arch2VecRLConfig(Arch2VecConfig):
    """arch2vec-RL: the published code's episode of 16 cells, Adam 1e-2, unit action noise."""

    batch: int = option(16, "cells per episode (one policy update each)", "16 (arch2vec code)")
    lr: float = option(1e-2, "Adam learning rate of the policy", "1e-2 (arch2vec code)")
    policy_hidden: int = option(128, "hidden size of the policy's LSTM cell", "128 (arch2vec code)")
    sigma: float = option(1.0, "standard deviation of the Gaussian action around the policy's mean",
                          "1.0 (arch2vec code)")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("batch", "policy_hidden"):
            require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")


class _Arch2VecSearcher(ArchSearcher):
    """The embedded pool both searchers draw from."""

    config: Arch2VecConfig

    def __init__(self, space: Space | str, *, config: Arch2VecConfig | None = None, **base: Any):
        super().__init__(space, config=config, **base)
        self._emb: Embeddings | None = None  # read from the cache at the first proposal

    @classmethod
    def shared_payload(cls, space: Space, options: dict[str, Any]) -> Any:
        """The embeddings (as plain data) that every study with these options reads."""
        config = build_config(cls.config_class, cls.name, dict(options))
        emb = load_embeddings(space, config.pretrain_options(), config.cache_dir, num_threads=config.num_threads)
        return {"space": space, "options": dataclasses.asdict(emb.options), "state": emb.state()}

    @classmethod
    def install_payload(cls, payload: Any) -> None:
        if payload is not None:
            remember(Embeddings(payload["space"], PretrainOptions(**payload["options"]), payload["state"]))

    def _load_pool(self) -> None:
        """Read (or, on a cache miss, pretrain) the embeddings and set up the pool; idempotent."""
        if self._emb is not None:
            return
        c = self.config
        self._emb = load_embeddings(self.space, c.pretrain_options(), c.cache_dir, num_threads=c.num_threads)
        if self.candidates is not None:  # a partial table: its cells, by their own keys
            self._pool_pos = self._candidate_pos
            rows = [self._emb.index.get(k, -1) for k in self._candidate_order]
            z = np.zeros((len(rows), self._emb.z.shape[1]), np.float32)
            known = [i for i, r in enumerate(rows) if r >= 0]
            z[known] = self._emb.z[[rows[i] for i in known]]
            missing = [i for i, r in enumerate(rows) if r < 0]
            if missing:  # a space too large to enumerate: encode these cells now
                z[missing] = self._emb.embed([self.candidates[i] for i in missing])
            self._pool_z = z
        else:
            self._pool_pos = self._emb.index
            self._pool_z = self._emb.z
        self._taken: tuple[int, np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()  # the embeddings come back from the cache, not the pickle
        for name in ("_emb", "_pool_z", "_pool_pos", "_taken"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._emb = None

    # ------------------------------------------------------------------ the pool
    def pool_arch(self, i: int) -> Arch:
        return self.candidates[i] if self.candidates is not None else self._emb.arch(i)

    def open_pool(self) -> np.ndarray:
        """Boolean mask of the pool cells not proposed yet (and, for candidates, within limits)."""
        if self.candidates is not None:
            return self._open_mask()
        if self._taken is None or self._taken[0] != len(self.seen):
            taken = np.zeros(len(self._pool_z), bool)
            rows = [self._pool_pos[k] for k in self.seen if k in self._pool_pos]
            taken[rows] = True
            self._taken = (len(self.seen), ~taken)
        return self._taken[1]

    def first_allowed(self, order: np.ndarray, limit: int = 1) -> list[int]:
        """The first ``limit`` pool rows of ``order`` whose cells may be proposed."""
        out = []
        for i in order:
            if self.allowed(self.pool_arch(int(i))):
                out.append(int(i))
                if len(out) == limit:
                    break
        return out

    def random_pool(self) -> Arch | None:
        """A random unseen pool cell (within limits), from ``self.rng``."""
        left = np.flatnonzero(self.open_pool())
        if not len(left):
            return None
        got = self.first_allowed(left[self.rng.permutation(len(left))[:2000]])
        return self.pool_arch(got[0]) if got else None

    def z_of(self, arch: Arch, key: str) -> np.ndarray:
        """Embedding of a cell: its pool row, else its cached or freshly encoded embedding."""
        row = self._pool_pos.get(key)
        if row is not None:
            return self._pool_z[row]
        return self._emb.embed([arch])[0]

    @property
    def embeddings(self) -> Embeddings:
        """The pretrained embeddings (read from the cache, or pretrained, on first use)."""
        self._load_pool()
        return self._emb  # type: ignore[return-value]

    @property
    def pretraining_metrics(self) -> dict[str, Any]:
        """The cache's Table 1 metrics (reconstruction accuracy, validity, uniqueness, in %)."""
        return dict(self.embeddings.metrics)


class Arch2VecBOSearcher(_Arch2VecSearcher):
    """Bayesian optimisation (DNGO + expected improvement) over arch2vec embeddings.

    Args:
        space: The search space.
        config: :class:`Arch2VecBOConfig`.
        **base: :class:`~raynas.searchers.ArchSearcher` arguments.

    Example:
        >>> s = Arch2VecBOSearcher("nasbench201", metric="test_accuracy", mode="max")  # doctest: +SKIP
    """

    name = "arch2vec-bo"
    config_class = Arch2VecBOConfig
    config: Arch2VecBOConfig

    def __init__(self, space: Space | str, *, config: Arch2VecBOConfig | None = None, **base: Any):
        super().__init__(space, config=config, **base)
        self.queue: list[int] = []  # pool rows chosen by the last round, best first
        self.rounds = 0

    def _propose(self) -> Arch | None:
        self._load_pool()
        while self.queue:
            arch = self.pool_arch(self.queue.pop(0))
            if self.allowed(arch):
                return arch
        ok = self.evaluated
        if len(ok) < self.config.n_initial:
            return self.random_pool()
        with torch_threads(self.config.num_threads):
            self.queue = self.round(ok)
        return self.pool_arch(self.queue.pop(0)) if self.queue else None

    def round(self, ok: list[dict[str, Any]]) -> list[int]:
        """Fit the surrogate to the evaluated cells; the ``batch`` open pool rows of highest EI."""
        self._load_pool()
        c = self.config
        x = np.stack([self.z_of(h["arch"], h["key"]) for h in ok])  # (n, D)
        y = np.array([h["score"] for h in ok], dtype=np.float64)  # (n,)
        model = Surrogate(c.surrogate, c.dngo_hidden, c.dngo_steps, c.dngo_lr).fit(x, y, torch_generator(self.rng))
        left = np.flatnonzero(self.open_pool())
        if not len(left):
            return []
        mean, var = model.predict(self._pool_z[left])
        ei = expected_improvement(mean, var, float(y.max()), c.xi)
        order = left[np.argsort(-ei, kind="stable")]
        self.rounds += 1
        return self.first_allowed(order, c.batch)

    def _state_dict(self) -> dict[str, Any]:
        return {"queue": list(self.queue), "rounds": self.rounds}

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self.queue = list(state["queue"])
        self.rounds = int(state["rounds"])
        self._taken = None


class _Policy(nn.Module):
    """The published code's ``Policy_LSTM``: ``LSTMCell(D, H)`` then ``Linear(H, D)``."""

    def __init__(self, latent: int, hidden: int):
        super().__init__()
        self.cell = nn.LSTMCell(latent, hidden)
        self.out = nn.Linear(hidden, latent)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """Action means ``(T, D)`` for an episode's states ``(T, D)``, from a zero LSTM state."""
        hx = cx = torch.zeros(1, self.cell.hidden_size)
        means = []
        for s in states:
            hx, cx = self.cell(s.unsqueeze(0), (hx, cx))
            means.append(self.out(hx))
        return torch.cat(means)


class Arch2VecRLSearcher(_Arch2VecSearcher):
    """REINFORCE in the arch2vec latent space (Yan et al., 2020, Sec. 4).

    Args:
        space: The search space.
        config: :class:`Arch2VecRLConfig`.
        **base: :class:`~raynas.searchers.ArchSearcher` arguments.

    The reward of a cell is its score; the baseline ``b`` is the mean score of the evaluated
    cells outside the episode, and advantages are divided by the spread of all scores so far
    (the published code subtracts a fixed 0.4 from accuracies in [0, 1]; this keeps the step
    size independent of the metric's units). Episodes whose cells are still running when the
    next one starts are learned from when their results are in.

    Example:
        >>> s = Arch2VecRLSearcher("nasbench201", metric="test_accuracy", mode="max")  # doctest: +SKIP
    """

    name = "arch2vec-rl"
    config_class = Arch2VecRLConfig
    config: Arch2VecRLConfig

    def __init__(self, space: Space | str, *, config: Arch2VecRLConfig | None = None, **base: Any):
        super().__init__(space, config=config, **base)
        c = self.config
        gen = torch_generator(self.rng)
        self.policy = build_seeded(lambda: _Policy(c.latent_size, c.policy_hidden), gen)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=c.lr)
        self.episodes: list[dict[str, list]] = []  # proposed, not yet learned from
        self.state: np.ndarray | None = None  # embedding of the last proposed cell
        self.scores: dict[str, float | None] = {}  # key -> score of every finished cell
        self.updates = 0

    def _propose(self) -> Arch | None:
        self._load_pool()
        c = self.config
        if self.state is None:  # the first cell: a random one, whose embedding starts the walk
            arch = self.random_pool()
            if arch is not None:
                self.state = self.z_of(arch, self.space.key(arch)).copy()
            return arch
        if not self.episodes or len(self.episodes[-1]["keys"]) >= c.batch:
            self.episodes.append({"states": [], "actions": [], "keys": []})
        episode = self.episodes[-1]
        with torch_threads(c.num_threads), torch.no_grad():
            states = torch.as_tensor(np.array(episode["states"] + [self.state]), dtype=torch.float32)
            mean = self.policy(states)[-1]  # (D,)
            noise = torch.randn(mean.shape, generator=torch_generator(self.rng))
            action = (mean + c.sigma * noise).numpy()
        left = np.flatnonzero(self.open_pool())
        if not len(left):
            return None
        dist = np.linalg.norm(self._pool_z[left] - action, axis=1)
        got = self.first_allowed(left[np.argsort(dist, kind="stable")])
        if not got:
            return None
        arch = self.pool_arch(got[0])
        episode["states"].append(self.state)
        episode["actions"].append(action)
        episode["keys"].append(self.space.key(arch))
        self.state = self._pool_z[got[0]].copy()
        return arch

    def _observe(self, arch: Arch, score: float | None, result: dict | None) -> None:
        self.scores[self.space.key(arch)] = score
        while self.episodes and self._complete(self.episodes[0]):
            self._learn(self.episodes.pop(0))

    def _complete(self, episode: dict[str, list]) -> bool:
        full = len(episode["keys"]) >= self.config.batch or episode is not self.episodes[-1]
        return full and all(k in self.scores for k in episode["keys"])

    def _learn(self, episode: dict[str, list]) -> None:
        """One REINFORCE step on a finished episode (failed cells are left out)."""
        rewards = np.array([np.nan if self.scores[k] is None else self.scores[k] for k in episode["keys"]])
        done = ~np.isnan(rewards)
        if not done.any():
            return
        ok = np.array([s for s in self.scores.values() if s is not None], dtype=np.float64)
        mine = set(episode["keys"])
        past = [v for k, v in self.scores.items() if k not in mine and v is not None]
        baseline = float(np.mean(past)) if past else float(rewards[done].mean())
        adv = (rewards[done] - baseline) / (float(ok.std()) + 1e-8)
        with torch_threads(self.config.num_threads):
            states = torch.as_tensor(np.array(episode["states"]), dtype=torch.float32)
            actions = torch.as_tensor(np.array(episode["actions"]), dtype=torch.float32)
            means = self.policy(states)  # (T, D)
            log_prob = -0.5 * ((actions - means) ** 2).sum(-1) / self.config.sigma**2  # log N + const
            loss = -(log_prob[torch.as_tensor(done)] * torch.as_tensor(adv, dtype=torch.float32)).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.updates += 1

    def _state_dict(self) -> dict[str, Any]:
        return {"policy": tensor_state(self.policy.state_dict()),
                "optimizer": tensor_state(self.optimizer.state_dict()),
                "episodes": [{k: [np.asarray(v) if k != "keys" else v for v in vals] for k, vals in e.items()}
                             for e in self.episodes],
                "state": self.state, "scores": dict(self.scores), "updates": self.updates}

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.episodes = [{k: list(vals) for k, vals in e.items()} for e in state["episodes"]]
        self.state = None if state["state"] is None else np.asarray(state["state"], np.float32)
        self.scores = dict(state["scores"])
        self.updates = int(state["updates"])
        self._taken = None
