"""`DNASSearcher`: Disentangled Neural Architecture Search (Zheng, Wang, Wang & Shi).

Algorithm 1 of the paper on the shared controller loop (:mod:`raynas.searchers._neural._loop`):
``n_initial`` random cells form the labelled set ``D'`` (lines 2-3); then every round

1. (line 5) pre-trains the beta-VAE controller on ``D'`` for ``pretrain_epochs``;
2. (lines 6-8) builds the pseudo-labelled set ``D^`` of ``|D^| = M = n_unlabeled`` cells by
   dense sampling, Eq. 4: a share ``eps_dense`` decoded from codes drawn uniformly from the
   dense regions ``R_s`` of the top-k cells of ``D'`` (interval half-width ``sigma`` times the
   spread of ``mu_s`` over ``D'``, so that "dense" is measured in the code's own scale), a share
   ``eps_edge`` decoded from around the codes whose predicted FLOPs lie just under the limit
   (only when a FLOPs limit is set), and the rest from the whole space (uniform cells, i.e. the
   codes of the aggregate posterior decoded back; duplicates are topped up from there so that
   ``|D^| = M``). The accuracy predictor labels ``D^``; FLOPs are computed wherever a cost is
   known for a cell (a table's cost columns or the space's cost model), predicted otherwise;
3. (lines 9-10) trains on ``D = D' u D^`` (``D'`` up-sampled ``up_sample`` times, SemiNAS's
   setting) for ``epochs`` (plus ``warmup_epochs`` in the first, cold round);
4. (line 11) picks the top ``top_p`` cells of ``D`` by (pseudo-)label among those within
   ``F (1 + tau)`` of the FLOPs limit ``F`` (true FLOPs for ``D'``, predicted for ``D^``) and
   moves their codes by Eq. 7, ``z' = z + t (eta1 df_acc/dz - eta2 df_flops/dz)``, with NAO's
   step schedule ``t = 1, 2, ...`` until ``batch`` new allowed cells decode; those are queued.
   Where ``max_steps`` passes with fewer (under a tight limit most moves leave the allowed
   region), the allowed unevaluated sources themselves (``t = 0``) fill the batch.

The FLOPs predictor learns the constrained cost (``max_cost``'s first metric, else FLOPs) from
``cost_fn`` (a table's cost columns, or with ``max_cost`` the space's cost model); without one
``lambda`` is 0. Eq. 7's FLOPs term and Eq. 4's edge share act only under a limit ("the
resource restrictions are not considered here", the paper on NAS-Bench-101). Ablations (the
paper's Table 3): ``dense_sampling=False`` gives ``eps_dense = 0`` (its share comes from the
whole space); ``disentangle=False`` trains a deterministic autoencoder (``beta = 0``, ``z = mu``).
:attr:`DNASSearcher.round_log` records, per round, the sizes of each share and how many new
cells Eq. 7 yielded at which step size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from raynas.searchers._config import option, require
from raynas.searchers._neural import (
    ENCODE_CHUNK,
    ControllerSearcher,
    Normaliser,
    build_module,
    check_loop_sizes,
    decode_archs,
    encode_archs,
    fit_semi_supervised,
    make_adam,
    mask_tensor,
    sample_unlabeled,
    train_epochs,
)
from raynas.searchers.dnas._controller import (
    ControllerConfig,
    DNASController,
    LossWeights,
    latent_size_rule,
)
from raynas.searchers.dnas._latent import (
    ascent_direction,
    code_spread,
    dense_regions,
    edge_codes,
    jitter,
    sample_product,
    share_sizes,
)
from raynas.spaces import Arch, Space


@dataclass(frozen=True)
class DNASConfig:
    """Every DNAS option; paper values (Zheng et al.) where the paper gives one.

    Loop sizes, epochs and step sizes are ours, tuned on NAS-Bench-201 for query budgets of
    100-300 cells with one CPU core per study (a 150-query study trains in about 20 s); the
    paper trains for longer on a GPU. ``searcher_options("dnas")`` lists them all.
    """

    # controller (Zheng et al.: S = hidden size = 26 on NB101, 46 on larger spaces)
    latent_size: int | None = option(None, "latent dimensions S; null: 26 for spaces up to NB101's size, else 46",
                                     "26 on NB101, 46 on ImageNet (Zheng et al.)")
    decoder_layers: int = option(2, "LSTM layers of the decoder (the encoder has one)")
    alpha: float = option(0.8, "weight of the accuracy-prediction loss (Eq. 5)", "0.8 (Zheng et al.)")
    lambda_flops: float = option(0.3, "weight of the FLOPs-prediction loss (Eq. 5); off without a cost model",
                                 "0.3 (Zheng et al.)")
    mu_rec: float = option(0.2, "weight of the reconstruction loss (Eq. 5)", "0.2 (Zheng et al.)")
    beta: float = option(1.0, "weight of the KL term of the beta-VAE (Eq. 5)", "1 (Zheng et al.)")
    lr: float = option(1e-3, "Adam learning rate of the controller", "0.001 (Zheng et al.)")
    weight_decay: float = option(1e-4, "L2 weight decay of the controller", "1e-4 (SemiNAS l2_reg)")
    dropout: float = option(0.1, "dropout on the encoder's token embeddings", "0.1 (SemiNAS)")
    acc_clip: float = option(1.5, "robust z-scored accuracy targets are clipped below at -acc_clip")
    # semi-supervised training (Zheng et al. follow SemiNAS: M = 10,000, up-sampling ratio 10)
    n_unlabeled: int = option(10_000, "M, pseudo-labelled random cells per round", "10,000 (SemiNAS, via Zheng et al.)")
    up_sample: int = option(10, "labelled cells are repeated this often beside the pseudo-labelled ones",
                            "10 (SemiNAS, via Zheng et al.)")
    pretrain_epochs: int = option(50, "controller epochs on the labelled cells per round")
    epochs: int = option(2, "epochs on up-sampled labelled + pseudo-labelled cells per round")
    warmup_epochs: int = option(15, "extra epochs over the combined set in the first (cold) round")
    train_batch_size: int = option(256, "cells per controller training batch")
    # Algorithm 1 loop
    n_initial: int = option(20, "random cells evaluated before the controller is first trained")
    batch: int = option(10, "new cells proposed per round")
    # dense sampling, Eq. 4 (Zheng et al. on NB101: k = 3, sigma = 0.05, eps 5% / 0% / 95%).
    # sigma is in units of each dimension's spread (std of mu over the labelled cells): the
    # paper's 0.05 sat in a code whose factors span about +/-0.4 (its Figures 3-4), i.e. about
    # 0.2 of their spread. eps_edge is ours (the paper gives no value); it is used only under
    # a FLOPs limit, and its share goes to the whole space otherwise.
    dense_sampling: bool = option(True, "sample part of each batch densely around the best cells' codes (Eq. 4)",
                                  "true (Zheng et al.)")
    top_k: int = option(3, "best cells whose latent regions are sampled densely", "3 (Zheng et al.)")
    sigma: float = option(0.2, "half-width of a dense region, in units of each dimension's spread",
                          "0.05 in absolute units, about 0.2 of the spread (Zheng et al.)")
    eps_dense: float = option(0.05, "share of each batch sampled in the dense regions", "5% (Zheng et al.)")
    eps_edge: float = option(0.05, "share sampled just under a FLOPs limit (only with a limit)")
    edge_band: float = option(0.05, "'just under F': predicted cost in [F (1 - band), F]")
    # beta-VAE capacity C (nats; Burgess et al., 2018): the KL term is beta * max(KL - C, 0).
    # None: twice the log of the number of token sequences the decoder's mask allows (19.3
    # nats on NAS-Bench-201: a cell's identity plus room for the posterior noise); 0: the
    # plain beta * KL, which at the paper's weights collapses the posterior.
    capacity: float | None = option(None, "KL capacity C in nats, loss beta x max(KL - C, 0); null: 2 log(#sequences)",
                                    "0, plain beta-VAE (Zheng et al.)")
    # latent optimisation, Eq. 7 (Zheng et al., ImageNet: the top 100 within F + tau)
    top_p: int = option(100, "best cells (within the limit) whose codes are moved by Eq. 7", "100 (Zheng et al., ImageNet)")
    tau: float = option(0.05, "relative slack of the limit: sources need cost <= F (1 + tau)",
                        "20M FLOPs on 500-600M (Zheng et al., ImageNet)")
    eta_acc: float = option(0.3, "step weight on the predicted-accuracy gradient (Eq. 7)")
    eta_flops: float = option(0.3, "step weight on the predicted-FLOPs gradient (Eq. 7)")
    max_steps: int = option(100, "largest step size tried (1, 2, ...) until a batch of new cells decodes",
                            "NAO schedule")
    # ablation and plumbing
    disentangle: bool = option(True, "false: beta = 0, a deterministic autoencoder (the Table 3 ablation)",
                               "true (Zheng et al.)")
    repairs: int = option(4, "resampling attempts for a decoded sequence that is not a valid cell")
    device: str = option("auto", "torch device of the controller: auto (CUDA if present), cpu, cuda, cuda:N")
    num_threads: int | None = option(1, "torch CPU threads while training (null: torch's default)")

    def __post_init__(self) -> None:
        check_loop_sizes(self)
        require(self.latent_size is None or self.latent_size >= 1, f"latent_size must be >= 1, got {self.latent_size}")
        for name in ("top_k", "max_steps", "top_p"):
            require(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("eps_dense", "eps_edge", "edge_band", "dropout"):
            require(0.0 <= getattr(self, name) <= 1.0, f"{name} must be in [0, 1], got {getattr(self, name)}")
        require(self.eps_dense + self.eps_edge <= 1.0,
                f"eps_dense + eps_edge must be <= 1 (the rest comes from the whole space), "
                f"got {self.eps_dense + self.eps_edge}")
        require(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")
        require(self.capacity is None or self.capacity >= 0, f"capacity must be >= 0 or null, got {self.capacity}")
        require(self.tau >= 0, f"tau must be >= 0, got {self.tau}")


class DNASSearcher(ControllerSearcher):
    """Disentangled NAS: a beta-VAE controller searched by dense sampling and latent optimisation.

    Args:
        space: The search space.
        config: :class:`DNASConfig`.
        **base: :class:`~raynas.searchers.ArchSearcher` arguments.

    Example:
        >>> s = DNASSearcher("nasbench201", metric="test_accuracy", mode="max", seed=0,
        ...                  config=DNASConfig(n_unlabeled=100))  # doctest: +SKIP
        >>> s.suggest("t0")  # doctest: +SKIP
    """

    name = "dnas"
    config_class = DNASConfig

    def __init__(self, space: Space | str, *, config: DNASConfig | None = None, **base: Any):
        super().__init__(space, config=config, **base)
        c = self.config
        self.ctrl_config = ControllerConfig(
            vocab_size=self.space.vocab_size,
            seq_length=self.space.seq_length,
            latent_size=c.latent_size or latent_size_rule(self.space.seq_length, self.space.cardinality),
            decoder_layers=c.decoder_layers,
            dropout=c.dropout,
        )
        self.ctrl_config.hidden_size = self.ctrl_config.latent_size  # paper: S = hidden size
        self.weights = LossWeights(c.alpha, c.lambda_flops, c.mu_rec, c.beta if c.disentangle else 0.0)
        self._setup_loop(c.n_initial, c.batch, c.device, c.num_threads)
        # The FLOPs term is on when a cost is given for cells: a cost_fn (a table's cost columns),
        # or a limit, which brings in the space's cost model (ArchSearcher). A cost model alone
        # does not switch it on, so that a search without limits does not depend on whether a
        # space happens to have one.
        self.use_cost = bool(c.lambda_flops) and self.cost_fn is not None and self.has_cost_model
        if not self.use_cost:
            self.weights.lambda_flops = 0.0
        mask = self._mask
        self.capacity_max = (
            2.0 * float(np.log(np.maximum(mask.sum(axis=1), 1)).sum()) if c.capacity is None else float(c.capacity)
        )
        self.epochs_trained = 0
        self.round_log: list[dict[str, Any]] = []
        self._pool: tuple[list[Arch], np.ndarray, np.ndarray] = ([], np.zeros(0), np.zeros(0))

    # ------------------------------------------------------------------ model
    def _build(self, gen: torch.Generator) -> None:
        self._mask = mask = mask_tensor(self.space).numpy()  # (T, V) tokens the decoder may emit
        self.model = build_module(lambda: DNASController(self.ctrl_config, mask), self.device, gen)
        self.model.eval()
        self.optimizer = make_adam(self.model, self.config.lr, self.config.weight_decay)

    @torch.no_grad()
    def encode(self, archs: list[Arch], chunk: int = ENCODE_CHUNK) -> np.ndarray:
        """Posterior means ``mu`` ``(N, S)`` of architectures."""
        self.model.eval()
        out = []
        for i in range(0, len(archs), chunk):
            mu, _ = self.model.encode(encode_archs(self.space, archs[i : i + chunk], self.device))
            out.append(mu.cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.ctrl_config.latent_size))

    @torch.no_grad()
    def predict(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised predicted ``(accuracy, cost)`` of codes ``(N, S)``."""
        acc, cost = self.model.predict(torch.as_tensor(codes, dtype=torch.float32, device=self.device))
        return acc.cpu().numpy(), cost.cpu().numpy()

    def decode(self, codes: np.ndarray, gen: torch.Generator | None = None) -> list[Arch | None]:
        """Masked greedy decoding of codes ``(N, S)``, repairing invalid cells by resampling."""
        z = torch.as_tensor(np.asarray(codes), dtype=torch.float32, device=self.device)
        if gen is None:
            gen = torch.Generator().manual_seed(0)

        def run(rows: torch.Tensor, greedy: bool, temperature: float) -> torch.Tensor:
            return self.model.generate(z[rows.to(self.device)], greedy, temperature, gen)

        return decode_archs(self.space, run, len(z), self.config.repairs, self.decode_stats)

    @property
    def capacity(self) -> float | None:
        """The KL capacity ``C`` (nats), or None for the plain ``beta * KL``."""
        if not self.capacity_max:
            return None
        return self.capacity_max

    # ------------------------------------------------------------------ training (lines 5-10)
    def _targets(self, archs: list[Arch], acc: np.ndarray, cost: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """Training tensors; ``cost`` (normalised) is given for pseudo-labelled cells, else looked up."""
        if cost is not None and self.use_cost:
            has = np.ones(len(archs), dtype=np.float32)
        else:
            costs = [self._safe_cost(a) for a in archs] if self.use_cost else [None] * len(archs)
            has = np.array([v is not None for v in costs], dtype=np.float32)
            cost = self.cost_norm.encode([v if v is not None else 1.0 for v in costs]) * has
        return {
            "tokens": encode_archs(self.space, archs, self.device),
            "acc": torch.as_tensor(acc, dtype=torch.float32, device=self.device),
            "cost": torch.as_tensor(cost, dtype=torch.float32, device=self.device),
            "has_cost": torch.as_tensor(has, device=self.device),
        }

    def _safe_cost(self, arch: Arch) -> float | None:
        try:
            return self.arch_cost(arch)
        except Exception:  # e.g. a cost_fn over a partial table
            return None

    def _train(self, archs: list[Arch], scores: np.ndarray, gen: torch.Generator) -> None:
        c = self.config
        self.acc_norm = Normaliser.fit(scores, clip=c.acc_clip, robust=True)
        if self.use_cost:
            known = [v for v in (self._safe_cost(a) for a in archs) if v is not None]
            self.cost_norm = Normaliser.fit(known, log=True)
        acc = self.acc_norm.encode(scores)
        self._log: dict[str, Any] = {"round": self.rounds, "labelled": len(archs)}

        def loss(batch: dict[str, torch.Tensor], g: torch.Generator) -> torch.Tensor:
            return self.model.loss(batch, g, self.weights, variational=c.disentangle, capacity=self.capacity)

        def fit(data: dict[str, torch.Tensor], epochs: int) -> float:
            self.epochs_trained += epochs
            return train_epochs(self.model, self.optimizer, loss, data, epochs, c.train_batch_size, gen)

        labelled = self._targets(archs, acc)
        self._pool = (list(archs), acc, self._labelled_costs(archs))

        def synthetic() -> dict[str, torch.Tensor] | None:
            if c.n_unlabeled <= 0:
                return None
            cells = self._unlabelled_set(archs, scores, gen)
            if not cells:
                return None
            pseudo_acc, pseudo_cost = self.predict(self.encode(cells))  # line 8: the predictors label D^
            costs = self._labelled_costs(cells)  # a cell's FLOPs are computed wherever a cost is known ...
            if self.use_cost:  # ... and pseudo-labelled only where not (e.g. a cost_fn over a partial table)
                unknown = np.isnan(costs)
                costs[unknown] = self.cost_norm.decode(pseudo_cost[unknown])
                pseudo_cost = self.cost_norm.encode(costs)
            pool_archs, pool_acc, pool_cost = self._pool
            self._pool = (pool_archs + cells, np.concatenate([pool_acc, pseudo_acc]), np.concatenate([pool_cost, costs]))
            return self._targets(cells, pseudo_acc, pseudo_cost)

        epochs = c.epochs + (c.warmup_epochs if self.rounds == 0 else 0)
        self.last_loss = fit_semi_supervised(fit, labelled, synthetic, c.pretrain_epochs, epochs, c.up_sample)

    def _labelled_costs(self, archs: list[Arch]) -> np.ndarray:
        if not self.use_cost:
            return np.full(len(archs), np.nan)
        return np.array([v if (v := self._safe_cost(a)) is not None else np.nan for a in archs], dtype=np.float64)

    def _unlabelled_set(self, archs: list[Arch], scores: np.ndarray, gen: torch.Generator) -> list[Arch]:
        """Algorithm 1 lines 6-7: ``M`` distinct unevaluated cells by Eq. 4's three shares."""
        c = self.config
        limit = self._limit()
        mu = self.encode(archs)  # (E, S), from the controller pre-trained on D'
        spread = code_spread(mu)
        n_dense, n_edge, _ = share_sizes(
            c.n_unlabeled, c.eps_dense if c.dense_sampling else 0.0, c.eps_edge if limit is not None else 0.0
        )
        seen = {tuple(self.space.to_sequence(a)) for a in archs}
        # The whole space: uniform cells (of the partial table, if any), the codes of the
        # aggregate posterior decoded back; drawn first, as the edge share looks among them too.
        whole = sample_unlabeled(self.space, self.rng, c.n_unlabeled, seen, self.candidates)
        codes = []
        if n_dense:
            order = np.argsort(-scores, kind="stable")[: c.top_k]
            codes.append(sample_product(dense_regions(mu[order], c.sigma * spread), self.rng, n_dense))
        n_edge_codes = 0
        if n_edge:
            pool = np.concatenate([mu, self.encode(whole)]) if whole else mu
            cost = self.cost_norm.decode(self.predict(pool)[1])
            edge = edge_codes(pool, cost, limit, c.edge_band)
            if len(edge):
                codes.append(jitter(edge, self.rng, n_edge, c.sigma * spread))
                n_edge_codes = n_edge
        out: list[Arch] = []
        if codes:
            for arch in self.decode(np.concatenate(codes), gen):
                if arch is None:
                    continue
                seq = tuple(self.space.to_sequence(arch))
                if seq not in seen:
                    seen.add(seq)
                    out.append(arch)
        n_targeted = len(out)
        for arch in whole:  # the whole-space share, topping D^ up to M
            if len(out) >= c.n_unlabeled:
                break
            seq = tuple(self.space.to_sequence(arch))
            if seq not in seen:
                seen.add(seq)
                out.append(arch)
        self._log.update(dense_codes=n_dense, edge_codes=n_edge_codes, targeted_new=n_targeted,
                         unlabeled=len(out))
        return out

    # ------------------------------------------------------------------ candidates (line 11)
    def _limit(self) -> float | None:
        return self.max_cost.get(self.cost_metric) if self.use_cost else None

    def _generate(self, gen: torch.Generator) -> list[Arch]:
        """Eq. 7 from the top-P cells of ``D' u D^`` within ``F (1 + tau)``, NAO's step schedule.

        The gradient is taken once at each starting code; step ``t`` decodes
        ``z + t * (eta1 df_acc/dz - eta2 df_flops/dz)`` for every source (best first) and keeps
        the new allowed cells, until ``batch`` of them have appeared or ``max_steps`` is
        reached; then allowed unevaluated sources (``t = 0``) fill what is left of the batch.
        The FLOPs term acts only under a limit.
        """
        c = self.config
        log = getattr(self, "_log", {"round": self.rounds})
        cells, labels, costs = self._pool
        limit = self._limit()
        order = np.argsort(-labels, kind="stable")
        if limit is not None:
            ok = ~(costs > limit * (1 + c.tau))  # NaN (unknown cost) passes; allowed() checks the truth
            order = order[ok[order]]
        src = [cells[i] for i in order[: c.top_p]]
        new: list[Arch] = []
        keys: set[str] = set()
        steps = 0
        if src and c.max_steps > 0:
            z = torch.as_tensor(self.encode(src), dtype=torch.float32, device=self.device)  # (P, S)
            eta_cost = c.eta_flops if limit is not None else 0.0
            direction = ascent_direction(self.model, z, c.eta_acc, eta_cost)  # (P, S)
            new, keys, steps = self._step_schedule(
                lambda t: self.decode((z + t * direction).cpu().numpy(), gen), c.max_steps
            )
        eq7 = len(new)
        # Fewer than a batch within max_steps (seen under a tight limit, where most moves leave
        # the allowed region): the remaining places go to the sources themselves, the step-0
        # point of the schedule, best (pseudo-)label first; unevaluated cells of D^ qualify.
        self._keep_new(src, new, keys, most=self.batch)
        log.update(sources=len(src), steps=steps, new=eq7, from_sources=len(new) - eq7)
        self.round_log.append(log)
        return new

    # ------------------------------------------------------------------ state
    def _state_dict(self) -> dict[str, Any]:
        state = self._loop_state()
        state.update(
            controller=asdict(self.ctrl_config),
            space=self.space.name,
            cost_metric=self.cost_metric,
            use_cost=self.use_cost,
            epochs_trained=self.epochs_trained,
            round_log=[dict(r) for r in self.round_log],
        )
        return state

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_loop_state(state)
        self.epochs_trained = int(state.get("epochs_trained", 0))
        self.round_log = [dict(r) for r in state.get("round_log", [])]

