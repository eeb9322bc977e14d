"""The DNAS controller: NAO's encoder-predictor-decoder without attention, trained as a beta-VAE.

Zheng, Wang, Wang & Shi, "Disentangled Neural Architecture Search". A token sequence (any
space's encoding; token 0 is padding and doubles as the decoder's start symbol) is embedded and
run through a single-layer LSTM; the *mean of its outputs over positions* (NAO's pooling; the
last state alone reconstructed worse) feeds two linear heads that give ``mu`` and
``log sigma^2`` of an ``S``-dimensional code ``z``. A multi-layer LSTM without attention
reconstructs the sequence: its initial state is a projection of ``z``, and each step also sees
the previous token, a position embedding and a projection of ``z`` (which speeds up learning
to use the code). Two MLPs predict accuracy (``S -> 64 -> 1``) and FLOPs (``S -> 16 -> 1``)
from ``mu``. The loss is

    L = alpha * L_acc + lambda * L_flops + mu * L_rec + beta * L_KL          (paper Eq. 5)

with ``L_acc``, ``L_flops`` the squared errors of normalised targets (Eqs. 2-3, averaged over
the batch), ``L_rec`` the cross-entropy summed over the ``T`` positions of a cell and ``L_KL``
the KL divergence of ``q(z|x)`` to ``N(0, I)`` summed over the ``S`` latent dimensions (Eq. 1):
both terms per sample, averaged over the batch, as the evidence lower bound defines them. With
the paper's weights (``mu = 0.2``, ``beta = 1``) that objective prefers a collapsed posterior
(on NAS-Bench-201 encoding a cell costs about 9.7 nats of KL but saves only 0.2 x 9.7 of
reconstruction), so the KL term is measured against a capacity ``C`` (Burgess et al., 2018,
"Understanding disentangling in beta-VAE", which the DNAS paper cites): ``beta * max(L_KL - C,
0)``. Burgess et al.'s ``|L_KL - C|`` was tried and fails here: a code whose decoder needs few
nats meets the target by widening the posterior of unused dimensions beyond the prior (KL
without information; held-out reconstruction fell to 5%). The one-sided form only bounds the
information the code may carry. The searcher sets ``C`` from the space (twice the log of its
number of token sequences), so the code can carry a cell's identity and the KL pressure
shapes how it is spread over the dimensions.
Decoding masks the logits of tokens the space forbids at each position, so every decoded
token is legal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from raynas.searchers._neural import dropout, pick_tokens

_NEG = -1e9  # logit of a masked token (finite, so masked rows never give NaN gradients)


@dataclass
class ControllerConfig:
    """Shape of a DNAS controller (the searcher fills it from the space and its options)."""

    vocab_size: int
    seq_length: int
    latent_size: int = 26  # Zheng et al.: S = hidden size = 26 on NAS-Bench-101
    hidden_size: int = 26
    decoder_layers: int = 2
    acc_hidden: int = 64  # accuracy predictor S -> 64 -> 1 (Zheng et al.)
    cost_hidden: int = 16  # FLOPs predictor S -> 16 -> 1
    dropout: float = 0.0
    pooling: str = "mean"  # "mean" of the LSTM outputs over positions, or "last" state
    z_input: bool = True  # also feed z to every decoder step
    predict_from_mu: bool = True  # predictors see mu in training too (else the sample z)


@dataclass
class LossWeights:
    """Weights of the four loss terms; paper defaults (Zheng et al.)."""

    alpha: float = 0.8  # accuracy predictor
    lambda_flops: float = 0.3  # FLOPs predictor
    mu_rec: float = 0.2  # reconstruction
    beta: float = 1.0  # KL (0: plain autoencoder)


def latent_size_rule(seq_length: int, cardinality: int | None) -> int:
    """``S = 26`` for spaces the size of NAS-Bench-101 or smaller, else ``46``.

    "NAS-Bench-101-size" means at most 10^6 encodings (NB101 has about 4.2e5 cells) and at
    most 32 tokens (NB101 sequences have 27-28). DARTS-like spaces (unbounded or astronomically
    many cells, longer sequences) get 46.
    """
    small = cardinality is not None and cardinality <= 1_000_000 and seq_length <= 32
    return 26 if small else 46


class DNASController(nn.Module):
    """Encoder (LSTM, mean-pooled) -> z -> LSTM decoder, plus accuracy and FLOPs predictors.

    Args:
        cfg: Sizes.
        mask: Boolean ``(T, V)`` array of allowed tokens per position (``space.token_mask()``).
    """

    def __init__(self, cfg: ControllerConfig, mask: np.ndarray):
        super().__init__()
        self.cfg = cfg
        V, T, H, S, L = cfg.vocab_size, cfg.seq_length, cfg.hidden_size, cfg.latent_size, cfg.decoder_layers
        self.enc_emb = nn.Embedding(V, H)
        self.encoder = nn.LSTM(H, H, 1, batch_first=True)
        self.to_mu = nn.Linear(H, S)
        self.to_logvar = nn.Linear(H, S)
        self.dec_emb = nn.Embedding(V, H)
        self.dec_pos = nn.Embedding(T, H)
        self.z_to_state = nn.Linear(S, 2 * L * H)
        self.z_to_input = nn.Linear(S, H) if cfg.z_input else None
        self.decoder = nn.LSTM(H, H, L, batch_first=True)
        self.head = nn.Linear(H, V)
        self.acc_head = nn.Sequential(nn.Linear(S, cfg.acc_hidden), nn.ReLU(), nn.Linear(cfg.acc_hidden, 1))
        self.cost_head = nn.Sequential(nn.Linear(S, cfg.cost_hidden), nn.ReLU(), nn.Linear(cfg.cost_hidden, 1))
        allowed = torch.as_tensor(np.asarray(mask, dtype=bool)).clone()
        allowed[:, 0] = False  # padding is never decoded
        self.register_buffer("mask", allowed, persistent=False)  # (T, V)

    # ------------------------------------------------------------------ encoder / predictors
    def encode(self, tokens: torch.Tensor, gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, each ``(B, S)``, of token sequences ``(B, T)``."""
        x = dropout(self.enc_emb(tokens), self.cfg.dropout, self.training, gen)  # (B, T, H)
        out, _ = self.encoder(x)  # (B, T, H)
        h = out.mean(dim=1) if self.cfg.pooling == "mean" else out[:, -1]  # (B, H)
        return self.to_mu(h), self.to_logvar(h)

    def predict(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised ``(accuracy (B,), cost (B,))`` predicted from codes ``(B, S)``."""
        return self.acc_head(z).squeeze(-1), self.cost_head(z).squeeze(-1)

    # ------------------------------------------------------------------ decoder
    def _init_state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, L, H = z.shape[0], self.cfg.decoder_layers, self.cfg.hidden_size
        s = torch.tanh(self.z_to_state(z)).view(B, 2, L, H)  # (B, 2, L, H)
        h0 = s[:, 0].transpose(0, 1).contiguous()  # (L, B, H)
        c0 = s[:, 1].transpose(0, 1).contiguous()  # (L, B, H)
        return h0, c0

    def decode_logits(self, z: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced masked logits ``(B, T, V)`` for target sequences ``(B, T)``."""
        B, T = tokens.shape
        prev = torch.cat([tokens.new_zeros(B, 1), tokens[:, :-1]], dim=1)  # (B, T): start token 0
        x = self.dec_emb(prev) + self.dec_pos.weight[:T]  # (B, T, H)
        if self.z_to_input is not None:
            x = x + self.z_to_input(z).unsqueeze(1)
        out, _ = self.decoder(x, self._init_state(z))  # (B, T, H)
        logits = self.head(out)  # (B, T, V)
        return logits.masked_fill(~self.mask[:T], _NEG)

    @torch.no_grad()
    def generate(
        self,
        z: torch.Tensor,
        greedy: bool = True,
        temperature: float = 1.0,
        gen: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decode codes ``(B, S)`` into legal token sequences ``(B, T)`` (greedy or sampled)."""
        B, T = z.shape[0], self.cfg.seq_length
        state = self._init_state(z)
        prev = torch.zeros(B, dtype=torch.long, device=z.device)
        out_tokens = []
        for t in range(T):
            x = self.dec_emb(prev) + self.dec_pos.weight[t]  # (B, H)
            if self.z_to_input is not None:
                x = x + self.z_to_input(z)
            x = x.unsqueeze(1)  # (B, 1, H)
            out, state = self.decoder(x, state)  # (B, 1, H)
            logits = self.head(out[:, 0]).masked_fill(~self.mask[t], _NEG)  # (B, V)
            prev = pick_tokens(logits, greedy, temperature, gen)  # (B,)
            out_tokens.append(prev)
        return torch.stack(out_tokens, dim=1)  # (B, T)

    # ------------------------------------------------------------------ training
    def loss(
        self,
        batch: dict[str, torch.Tensor],
        gen: torch.Generator,
        w: LossWeights,
        variational: bool = True,
        capacity: float | None = None,
    ) -> torch.Tensor:
        """Eq. 5 on a batch with ``tokens``, ``acc``, ``cost`` and ``has_cost``.

        ``acc`` and ``cost`` are normalised targets; rows with ``has_cost == 0`` add no FLOPs
        loss. The decoder sees the reparameterised sample ``z``; the predictors see ``mu`` (as
        at inference: fed the noisy sample, they ranked held-out cells far worse). ``capacity``
        (nats) replaces ``beta * KL`` by ``beta * max(KL - capacity, 0)``.
        """
        tokens = batch["tokens"]  # (B, T)
        mu, logvar = self.encode(tokens, gen)  # (B, S) each
        if variational:
            noise = torch.randn(mu.shape, generator=gen).to(mu.device)
            z = mu + torch.exp(0.5 * logvar) * noise  # (B, S)
        else:
            z = mu
        logits = self.decode_logits(z, tokens)  # (B, T, V)
        rec = F.cross_entropy(logits.flatten(0, 1), tokens.flatten(), reduction="sum") / len(tokens)
        acc, cost = self.predict(mu if self.cfg.predict_from_mu else z)
        loss = w.alpha * F.mse_loss(acc, batch["acc"]) + w.mu_rec * rec
        if w.lambda_flops and bool(batch["has_cost"].any()):
            m = batch["has_cost"]
            loss = loss + w.lambda_flops * ((cost - batch["cost"]) ** 2 * m).sum() / m.sum()
        if variational and w.beta:
            kl = kl_per_sample(mu, logvar).mean()  # nats per cell
            loss = loss + w.beta * (kl if capacity is None else torch.relu(kl - capacity))
        return loss


def kl_per_sample(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, sigma^2) || N(0, I))`` of each row ``(B,)``, summed over the latent dimensions."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1)
