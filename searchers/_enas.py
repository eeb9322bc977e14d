"""ENAS's controller (Pham et al., 2018): an LSTM that samples cells, trained with REINFORCE.

The controller reads the cell as the space's token sequence (``space.to_full_sequence``), one
decision per step: the LSTM's input is the embedding of the previous decision (a start token
first), its hidden state ``h_t`` gives the decision's distribution through a linear layer,
``logits = c * tanh(W h_t / T)`` with ENAS's temperature ``T = 5`` and tanh constant
``c = 1.1``, restricted to the tokens the space allows at that position. Every
``num_aggregate`` results (10) it takes one Adam step (lr 0.0035) on the policy-gradient loss
with an entropy bonus (weight 1e-4) and an exponential moving-average baseline of the rewards
(decay 0.99): ``L_PG = -(R - b) log p(cell) - w_H H(p)``. Those are the published settings of
ENAS's micro search.

In raynas the controller is a searcher and the shared weights live in the evaluator: searched
over a :class:`~raynas.trainables.supernet.SupernetEvaluator` (or any evaluator, a table
included), it proposes cells and learns from their accuracy exactly as ENAS does.

A known failure (the ENAS blog in ``../shared/papers``, "What is the controller learning?"):
the hidden states of an unregularized controller come out the same for every sampled cell, so
it encodes nothing about its past decisions. ``memory_regularizer=True`` adds the blog's
self-supervised remedy: sampled cells go to a memory buffer (up to ``memory_size``), and once
it holds ``memory_start`` of them every update adds ``L_Sup``, the negative log-likelihood of
reconstructing ``memory_batch`` cells drawn from it, decision by decision given the previous
ones (teacher forcing), to the loss: ``L = L_PG + memory_weight * L_Sup``.
:meth:`ENASSearcher.hidden_spread` is the diagnostic: the spread of the final hidden state
across sampled cells (0: collapsed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from raynas._errors import InvalidArchitectureError
from raynas.searchers._base import ArchSearcher
from raynas.searchers._config import option, require
from raynas.searchers._neural import (
    build_module,
    mask_tensor,
    tensor_state,
    torch_generator,
    torch_threads,
)
from raynas.spaces import Arch


@dataclass(frozen=True)
class ENASConfig:
    """ENAS controller settings (defaults: ENAS's micro search).

    Attributes:
        hidden_size: LSTM and embedding size (64).
        learning_rate: Adam learning rate (0.0035).
        entropy_weight: Weight of the entropy bonus (1e-4).
        baseline_decay: Decay of the reward's moving-average baseline (0.99).
        temperature: Logits are divided by it before the tanh (5.0).
        tanh_constant: Logits are ``tanh_constant * tanh(.)`` (1.1).
        num_aggregate: Results per controller update (10).
        reward_scale: Rewards are ``score * reward_scale`` (0.01: percent to [0, 1]).
        memory_regularizer: Add the self-supervised reconstruction loss (the ENAS blog's remedy).
        memory_size: Cells the memory buffer holds (10,000; the oldest is replaced at random).
        memory_start: Cells in the buffer before the reconstruction loss starts.
        memory_batch: Cells reconstructed per update (100).
        memory_weight: Weight of the reconstruction loss (1.0).
    """

    hidden_size: int = option(64, "LSTM and embedding size", "64 (ENAS micro search)")
    learning_rate: float = option(0.0035, "Adam learning rate of the controller", "0.0035 (ENAS micro search)")
    entropy_weight: float = option(1e-4, "weight of the entropy bonus in the policy loss", "1e-4 (ENAS)")
    baseline_decay: float = option(0.99, "decay of the reward's moving-average baseline", "0.99 (ENAS micro search)")
    temperature: float = option(5.0, "logits are divided by it before the tanh", "5.0 (ENAS micro search)")
    tanh_constant: float = option(1.1, "logits = tanh_constant x tanh(logits / temperature)", "1.1 (ENAS micro search)")
    num_aggregate: int = option(10, "results per controller update (one Adam step)", "10 (ENAS micro search)")
    reward_scale: float = option(0.01, "reward = score x reward_scale (0.01 turns percent into [0, 1])")
    memory_regularizer: bool = option(False, "add the ENAS blog's loss for reconstructing past cells",
                                      "off (the ENAS blog's remedy for a collapsed controller)")
    memory_size: int = option(10_000, "cells the memory buffer holds (then replaced at random)",
                              "10,000 (ENAS blog)")
    memory_start: int = option(50, "cells in the buffer before the reconstruction loss starts")
    memory_batch: int = option(100, "past cells reconstructed per update", "100 (ENAS blog)")
    memory_weight: float = option(1.0, "weight of the reconstruction loss", "1.0 (ENAS blog: L = L_PG + L_Sup)")

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_aggregate", "memory_size", "memory_batch"):
            require(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        require(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        require(0 <= self.baseline_decay < 1, f"baseline_decay must be in [0, 1), got {self.baseline_decay}")
        require(self.temperature > 0 and self.tanh_constant > 0, "temperature and tanh_constant must be > 0")
        require(self.entropy_weight >= 0 and self.memory_weight >= 0, "the loss weights must not be negative")
        require(self.memory_start >= 0, f"memory_start must be >= 0, got {self.memory_start}")


class Controller(nn.Module):
    """The LSTM policy over a token sequence of length ``T`` and vocabulary ``V`` (0 = start)."""

    def __init__(self, vocab: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.cell = nn.LSTMCell(hidden, hidden)
        self.out = nn.Linear(hidden, vocab)


class ENASSearcher(ArchSearcher):
    """ENAS's LSTM controller with REINFORCE (see the module docstring).

    Args:
        space: The search space.
        config: :class:`ENASConfig`.
        **base: :class:`ArchSearcher` arguments.
    """

    name = "enas"
    config_class = ENASConfig

    def __init__(self, space, *, config: ENASConfig | None = None, **base: Any):
        super().__init__(space, config=config, **base)
        cfg = self.config
        self.mask = mask_tensor(self.space)  # (T, V): the space's tokens within the encodings' support
        self.gen = torch_generator(self.rng)
        with torch_threads(1):
            self.net = build_module(lambda: Controller(self.space.vocab_size, cfg.hidden_size), torch.device("cpu"),
                                    self.gen)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.learning_rate)
        self.baseline: float | None = None
        self.batch: list[tuple[list[int], float]] = []  # (tokens, reward) since the last update
        self.memory: list[list[int]] = []
        self.updates = 0

    # ------------------------------------------------------------------ the policy
    def _logits(self, h: torch.Tensor, t: int) -> torch.Tensor:
        cfg = self.config
        logits = cfg.tanh_constant * torch.tanh(self.net.out(h) / cfg.temperature)  # (B, V)
        return logits.masked_fill(~self.mask[t], float("-inf"))

    def _run(self, tokens: torch.Tensor | None, n: int, gen: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample ``n`` sequences (``tokens`` None) or score given ones ``(n, T)``.

        Returns tokens ``(n, T)``, log-probabilities ``(n,)``, entropies ``(n,)`` and the final
        hidden states ``(n, H)``.
        """
        hidden = self.config.hidden_size
        h, c = torch.zeros(n, hidden), torch.zeros(n, hidden)
        prev = torch.zeros(n, dtype=torch.long)  # the start token
        out, logp, ent = [], torch.zeros(n), torch.zeros(n)
        for t in range(self.space.seq_length):
            h, c = self.net.cell(self.net.embed(prev), (h, c))
            log_probs = torch.log_softmax(self._logits(h, t), dim=-1)  # (n, V)
            if tokens is None:
                tok = torch.multinomial(log_probs.exp(), 1, generator=gen).squeeze(1)
            else:
                tok = tokens[:, t]
            probs = log_probs.exp()
            logp = logp + log_probs.gather(1, tok[:, None]).squeeze(1)
            ent = ent - (probs * log_probs.masked_fill(probs == 0, 0.0)).sum(-1)
            out.append(tok)
            prev = tok
        return torch.stack(out, 1), logp, ent, h

    def _propose(self) -> Arch | None:
        with torch.no_grad(), torch_threads(1):
            tokens = self._run(None, 1, self.gen)[0][0].tolist()
        try:
            arch = self.space.from_sequence(tokens)
            self.space.validate(arch)
        except InvalidArchitectureError:
            return None if self.candidates is None else self.nearest_candidate(tokens)
        if self.candidates is not None and not self.allowed(arch):
            return self.nearest_candidate(tokens)
        return arch

    # ------------------------------------------------------------------ learning
    def _observe(self, arch: Arch, score: float | None, result: dict | None) -> None:
        tokens = self.space.to_full_sequence(arch)
        if self.config.memory_regularizer:
            self._remember(tokens)
        if score is None:
            return
        self.batch.append((tokens, score * self.config.reward_scale))
        if len(self.batch) >= self.config.num_aggregate:
            self._update()

    def _remember(self, tokens: list[int]) -> None:
        if len(self.memory) < self.config.memory_size:
            self.memory.append(tokens)
        else:
            self.memory[int(self.rng.integers(len(self.memory)))] = tokens

    def _update(self) -> None:
        cfg = self.config
        advantages = []
        for _, reward in self.batch:
            self.baseline = reward if self.baseline is None else (
                cfg.baseline_decay * self.baseline + (1 - cfg.baseline_decay) * reward)
            advantages.append(reward - self.baseline)
        with torch_threads(1):
            tokens = torch.tensor([t for t, _ in self.batch], dtype=torch.long)
            _, logp, ent, _ = self._run(tokens, len(self.batch))
            loss = -(torch.tensor(advantages) * logp).mean() - cfg.entropy_weight * ent.mean()
            if cfg.memory_regularizer and len(self.memory) >= max(1, cfg.memory_start):
                pick = self.rng.choice(len(self.memory), size=min(cfg.memory_batch, len(self.memory)), replace=False)
                past = torch.tensor([self.memory[i] for i in pick], dtype=torch.long)
                loss = loss + cfg.memory_weight * (-self._run(past, len(past))[1].mean())
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        self.batch.clear()
        self.updates += 1

    # ------------------------------------------------------------------ diagnostics
    @torch.no_grad()
    def log_likelihood(self, archs: list[Arch]) -> np.ndarray:
        """Log-probability of sampling each of ``archs`` under the current policy."""
        tokens = torch.tensor([self.space.to_full_sequence(a) for a in archs], dtype=torch.long)
        with torch_threads(1):
            return self._run(tokens, len(archs))[1].numpy()

    @torch.no_grad()
    def hidden_spread(self, n: int = 100, seed: int = 0) -> float:
        """Spread of the controller's final hidden state across ``n`` sampled cells.

        The mean over hidden units of the standard deviation across samples (drawn with a
        private generator, so the search is not disturbed). Near 0: every sampled cell leaves the
        same hidden state, the collapse the ENAS blog shows; the memory regularizer raises it.
        """
        with torch_threads(1):
            h = self._run(None, n, torch.Generator().manual_seed(seed))[3]  # (n, H)
        return float(h.std(dim=0).mean())

    # ------------------------------------------------------------------ state
    def _state_dict(self) -> dict[str, Any]:
        return {"net": tensor_state(self.net.state_dict()), "opt": tensor_state(self.opt.state_dict()),
                "gen": self.gen.get_state(), "baseline": self.baseline,
                "batch": [(list(t), float(r)) for t, r in self.batch],
                "memory": np.asarray(self.memory, dtype=np.int64).reshape(len(self.memory), self.space.seq_length),
                "updates": self.updates}

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
        self.baseline = state["baseline"]
        self.batch = [(list(t), float(r)) for t, r in state["batch"]]
        self.memory = [list(map(int, row)) for row in np.asarray(state["memory"])]
        self.updates = int(state["updates"])
