"""`NAOSearcher` and `SemiNASSearcher`: gradient-based search in NAO's continuous embedding.

NAO (Luo et al., NeurIPS 2018) trains an encoder-predictor-decoder on evaluated cells, moves
the encoder outputs of the best cells along the gradient of the predicted accuracy with growing
step sizes until new cells decode, and evaluates them. SemiNAS (Luo et al., 2020) adds
semi-supervision: the predictor pseudo-labels ``M`` random cells, which join the up-sampled
labelled cells for a second training phase, and the best of both seed the search.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from raynas.searchers.nao._model import NAOController, NAOControllerConfig
from raynas.spaces import Arch, Space


@dataclass(frozen=True)
class NAOConfig:
    """NAO options; defaults from SemiNAS's NAS-Bench-101 script (renqianluo/SemiNAS).

    Epochs and loop sizes are scaled from the paper's GPU schedule (1000 + 500 epochs, 100 initial
    cells, 100 new per iteration) to query budgets of 100-300 cells on one CPU core.
    """

    hidden_size: int = option(64, "LSTM hidden and embedding size of encoder and decoder", "64 (SemiNAS NB101 script)")
    encoder_layers: int = option(1, "LSTM layers of the encoder", "1 (SemiNAS NB101 script)")
    decoder_layers: int = option(1, "LSTM layers of the decoder", "1 (SemiNAS NB101 script)")
    mlp_layers: int = option(2, "layers of the accuracy predictor MLP", "2 (SemiNAS NB101 script)")
    mlp_hidden_size: int = option(16, "hidden units of the predictor MLP", "16 (SemiNAS NB101 script)")
    dropout: float = option(0.1, "dropout on the encoder's token embeddings", "0.1 (SemiNAS NB101 script)")
    trade_off: float = option(0.8, "loss = trade_off x predictor loss + (1 - trade_off) x reconstruction",
                              "0.8 (SemiNAS NB101 script)")
    lr: float = option(1e-3, "Adam learning rate of the controller", "0.001 (SemiNAS NB101 script)")
    weight_decay: float = option(1e-4, "L2 weight decay of the controller", "1e-4 (SemiNAS l2_reg)")
    grad_bound: float = option(5.0, "gradient-norm clip of the controller", "5.0 (SemiNAS NB101 script)")
    train_batch_size: int = option(100, "cells per controller training batch", "100 (SemiNAS NB101 script)")
    acc_clip: float = option(1.5, "robust z-scored accuracy targets are clipped below at -acc_clip")
    pretrain_epochs: int = option(100, "controller epochs on the labelled cells per round",
                                  "1000 on a GPU (NAO)")
    epochs: int = option(1, "epochs on up-sampled labelled + pseudo-labelled cells (SemiNAS only)")
    warmup_epochs: int = option(4, "extra epochs of that phase in the first (cold) round")
    n_unlabeled: int = option(0, "M, pseudo-labelled random cells per round; 0 is NAO", "0 (NAO)")
    up_sample: int = option(10, "labelled cells are repeated this often beside the pseudo-labelled ones",
                            "10 (SemiNAS)")
    top_k: int = option(100, "best cells whose embeddings are moved along the predictor gradient",
                        "100 (SemiNAS)")
    max_step_size: int = option(100, "largest step size tried (1, 2, ...) until new cells decode", "NAO schedule")
    n_initial: int = option(20, "random cells evaluated before the controller is first trained",
                            "100 (SemiNAS, for 1000s of queries)")
    batch: int = option(10, "new cells proposed per round", "100 (SemiNAS, for 1000s of queries)")
    repairs: int = option(4, "resampling attempts for a decoded sequence that is not a valid cell")
    device: str = option("auto", "torch device of the controller: auto (CUDA if present), cpu, cuda, cuda:N")
    num_threads: int | None = option(1, "torch CPU threads while training (null: torch's default)")

    def __post_init__(self) -> None:
        check_loop_sizes(self)
        require(0.0 <= self.trade_off <= 1.0, f"trade_off must be in [0, 1], got {self.trade_off}")
        require(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.n_unlabeled >= 0, f"n_unlabeled must be >= 0, got {self.n_unlabeled}")


@dataclass(frozen=True)
class SemiNASConfig(NAOConfig):
    """SemiNAS options: NAO's plus ``M`` pseudo-labelled cells (Luo et al., 2020)."""

    pretrain_epochs: int = option(50, "controller epochs on the labelled cells per round (the second phase "
                                      "trains it too)", "1000 on a GPU (SemiNAS)")
    n_unlabeled: int = option(10_000, "M, pseudo-labelled random cells per round", "10,000 (SemiNAS)")


class NAOSearcher(ControllerSearcher):
    """Neural Architecture Optimization: search by gradient steps in a learned embedding.

    Args:
        space: The search space.
        config: :class:`NAOConfig`.
        **base: :class:`~raynas.searchers.ArchSearcher` arguments.

    Example:
        >>> s = NAOSearcher("nasbench201", metric="test_accuracy", mode="max", seed=0)  # doctest: +SKIP
    """

    name = "nao"
    config_class = NAOConfig

    def __init__(self, space: Space | str, *, config: NAOConfig | None = None, **base: Any):
        super().__init__(space, config=config, **base)
        s = self.config
        self.model_config = NAOControllerConfig(
            self.space.vocab_size, self.space.seq_length, s.hidden_size, s.encoder_layers,
            s.decoder_layers, s.mlp_layers, s.mlp_hidden_size, s.dropout,
        )
        self._pool: tuple[list[Arch], np.ndarray] = ([], np.zeros(0))
        self._setup_loop(s.n_initial, s.batch, s.device, s.num_threads)

    def _build(self, gen: torch.Generator) -> None:
        mask = mask_tensor(self.space).numpy()
        self.model = build_module(lambda: NAOController(self.model_config, mask), self.device, gen)
        self.model.eval()
        self.optimizer = make_adam(self.model, self.config.lr, self.config.weight_decay)

    @torch.no_grad()
    def predict(self, archs: list[Arch], chunk: int = ENCODE_CHUNK) -> np.ndarray:
        """Normalised predicted accuracy of architectures."""
        self.model.eval()
        out = []
        for i in range(0, len(archs), chunk):
            _, emb = self.model.encode(encode_archs(self.space, archs[i : i + chunk], self.device))
            out.append(self.model.predict(emb).cpu())
        return torch.cat(out).numpy() if out else np.zeros(0)

    def decode(self, outputs: torch.Tensor, emb: torch.Tensor, gen: torch.Generator) -> list[Arch | None]:
        """Masked greedy decoding, repairing invalid cells by resampling."""

        def run(rows: torch.Tensor, greedy: bool, temperature: float) -> torch.Tensor:
            rows = rows.to(self.device)
            return self.model.generate(outputs[rows], emb[rows], greedy, temperature, gen)

        return decode_archs(self.space, run, len(emb), self.config.repairs, self.decode_stats)

    # ------------------------------------------------------------------ training
    def _train(self, archs: list[Arch], scores: np.ndarray, gen: torch.Generator) -> None:
        s = self.config
        self.acc_norm = Normaliser.fit(scores, clip=s.acc_clip, robust=True)
        acc = self.acc_norm.encode(scores)

        def data(cells: list[Arch], targets: np.ndarray) -> dict[str, torch.Tensor]:
            return {
                "tokens": encode_archs(self.space, cells, self.device),
                "acc": torch.as_tensor(targets, dtype=torch.float32, device=self.device),
            }

        def fit(batch: dict[str, torch.Tensor], epochs: int) -> float:
            return train_epochs(
                self.model, self.optimizer, lambda b, g: self.model.loss(b, g, s.trade_off),
                batch, epochs, s.train_batch_size, gen, s.grad_bound,
            )

        self._pool = (list(archs), acc)

        def synthetic() -> dict[str, torch.Tensor] | None:
            if s.n_unlabeled <= 0:
                return None
            exclude = {tuple(self.space.to_sequence(a)) for a in archs}
            cells = sample_unlabeled(self.space, self.rng, s.n_unlabeled, exclude, self.candidates)
            pseudo = self.predict(cells)
            self._pool = (list(archs) + cells, np.concatenate([acc, pseudo]))
            return data(cells, pseudo)

        epochs = s.epochs + (s.warmup_epochs if self.rounds == 0 else 0)
        self.last_loss = fit_semi_supervised(
            fit, data(archs, acc), synthetic, s.pretrain_epochs, epochs if s.n_unlabeled > 0 else 0, s.up_sample
        )

    # ------------------------------------------------------------------ candidates
    def _generate(self, gen: torch.Generator) -> list[Arch]:
        """Move the top-k cells' encoder outputs with step sizes 1, 2, ... until a batch is new."""
        s = self.config
        cells, targets = self._pool
        order = np.argsort(-targets, kind="stable")[: s.top_k]
        tokens = encode_archs(self.space, [cells[i] for i in order], self.device)
        self.model.eval()
        outputs, grad = self.model.gradient(tokens)

        def decode_at(step: int) -> list[Arch | None]:
            return self.decode(*self.model.move(outputs, grad, float(step)), gen)

        return self._step_schedule(decode_at, s.max_step_size)[0]

    # ------------------------------------------------------------------ state
    def _state_dict(self) -> dict[str, Any]:
        state = self._loop_state()
        state.update(space=self.space.name)
        return state


class SemiNASSearcher(NAOSearcher):
    """SemiNAS: NAO plus ``M`` pseudo-labelled cells (Luo et al., 2020); see :class:`NAOSearcher`.

    Example:
        >>> s = SemiNASSearcher("nasbench201", metric="test_accuracy", mode="max", seed=0)  # doctest: +SKIP
    """

    name = "seminas"
    config_class = SemiNASConfig
