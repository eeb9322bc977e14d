"""NAO's encoder-predictor-decoder (Luo et al., 2018), with SemiNAS's published sizes.

The encoder embeds the token sequence, runs a bidirectional LSTM, projects back to the hidden
size with a residual connection and L2-normalises every position; the architecture embedding is
the normalised mean over positions. A residual MLP on the embedding predicts accuracy. The
decoder is an LSTM, started from the embedding, with dot-product attention over the encoder
outputs. New architectures come from moving the encoder outputs along the gradient of the
predicted accuracy and decoding (``NAOController.move``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from raynas.searchers._neural import dropout, pick_tokens

_NEG = -1e9  # logit of a masked token


@dataclass
class NAOControllerConfig:
    """Controller sizes; defaults are SemiNAS's NAS-Bench-101 script (renqianluo/SemiNAS)."""

    vocab_size: int
    seq_length: int
    hidden_size: int = 64
    encoder_layers: int = 1
    decoder_layers: int = 1
    mlp_layers: int = 2
    mlp_hidden_size: int = 16
    dropout: float = 0.1


class Attention(nn.Module):
    """Dot-product attention of decoder states over encoder outputs, then ``tanh`` projection."""

    def __init__(self, dim: int):
        super().__init__()
        self.input_proj = nn.Linear(dim, dim, bias=False)
        self.output_proj = nn.Linear(2 * dim, dim, bias=False)

    def forward(self, x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        # x: (B, t, H) decoder states; source: (B, T, H) encoder outputs
        scores = torch.bmm(self.input_proj(x), source.transpose(1, 2))  # (B, t, T)
        mix = torch.bmm(torch.softmax(scores, dim=-1), source)  # (B, t, H)
        return torch.tanh(self.output_proj(torch.cat([mix, x], dim=-1)))  # (B, t, H)


class NAOController(nn.Module):
    """Encoder, accuracy predictor and attention decoder of NAO / SemiNAS.

    Args:
        cfg: Sizes.
        mask: Boolean ``(T, V)`` array of allowed tokens per position (``space.token_mask()``).
    """

    def __init__(self, cfg: NAOControllerConfig, mask: np.ndarray):
        super().__init__()
        self.cfg = cfg
        V, H = cfg.vocab_size, cfg.hidden_size
        self.enc_emb = nn.Embedding(V, H)
        self.encoder = nn.LSTM(H, H, cfg.encoder_layers, batch_first=True, bidirectional=True)
        self.out_proj = nn.Linear(2 * H, H)
        sizes = [H] + [cfg.mlp_hidden_size] * (cfg.mlp_layers - 1) + [H]
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.regressor = nn.Linear(H, 1)
        self.dec_emb = nn.Embedding(V, H)
        self.decoder = nn.LSTM(H, H, cfg.decoder_layers, batch_first=True)
        self.attention = Attention(H)
        self.head = nn.Linear(H, V)
        allowed = torch.as_tensor(np.asarray(mask, dtype=bool)).clone()
        allowed[:, 0] = False  # padding is never decoded
        self.register_buffer("mask", allowed, persistent=False)  # (T, V)

    # ------------------------------------------------------------------ encoder / predictor
    def encode(self, tokens: torch.Tensor, gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(outputs (B, T, H), embedding (B, H))``, both L2-normalised."""
        x = dropout(self.enc_emb(tokens), self.cfg.dropout, self.training, gen)  # (B, T, H)
        out, _ = self.encoder(x)  # (B, T, 2H)
        out = F.normalize(x + self.out_proj(out), dim=-1)  # (B, T, H)
        return out, self.pool(out)

    @staticmethod
    def pool(outputs: torch.Tensor) -> torch.Tensor:
        return F.normalize(outputs.mean(dim=1), dim=-1)  # (B, H)

    def predict(self, emb: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Normalised predicted accuracy ``(B,)`` of embeddings ``(B, H)`` (residual MLP)."""
        x = emb
        for layer in self.mlp:
            x = dropout(F.relu(layer(x)), self.cfg.dropout, self.training, gen)
        return self.regressor((emb + x) * math.sqrt(0.5)).squeeze(-1)

    # ------------------------------------------------------------------ decoder
    def _state(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = emb.unsqueeze(0).repeat(self.cfg.decoder_layers, 1, 1).contiguous()  # (L, B, H)
        return h, h.clone()

    def _step_out(self, x: torch.Tensor, outputs: torch.Tensor, state):
        residual = x
        y, state = self.decoder(x, state)
        y = (residual + y) * math.sqrt(0.5)
        y = (y + self.attention(y, outputs)) * math.sqrt(0.5)
        return self.head(y), state  # (B, t, V)

    def decode_logits(
        self, outputs: torch.Tensor, emb: torch.Tensor, tokens: torch.Tensor, gen: torch.Generator | None = None
    ) -> torch.Tensor:
        """Teacher-forced masked logits ``(B, T, V)``."""
        B, T = tokens.shape
        prev = torch.cat([tokens.new_zeros(B, 1), tokens[:, :-1]], dim=1)  # (B, T)
        x = dropout(self.dec_emb(prev), self.cfg.dropout, self.training, gen)  # (B, T, H)
        logits, _ = self._step_out(x, outputs, self._state(emb))
        return logits.masked_fill(~self.mask[:T], _NEG)

    @torch.no_grad()
    def generate(
        self,
        outputs: torch.Tensor,
        emb: torch.Tensor,
        greedy: bool = True,
        temperature: float = 1.0,
        gen: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Masked decoding ``(B, T)`` from encoder outputs ``(B, T, H)`` and embedding ``(B, H)``."""
        B = emb.shape[0]
        state = self._state(emb)
        prev = torch.zeros(B, dtype=torch.long, device=emb.device)
        tokens = []
        for t in range(self.cfg.seq_length):
            logits, state = self._step_out(self.dec_emb(prev).unsqueeze(1), outputs, state)  # (B, 1, V)
            prev = pick_tokens(logits[:, 0].masked_fill(~self.mask[t], _NEG), greedy, temperature, gen)
            tokens.append(prev)
        return torch.stack(tokens, dim=1)  # (B, T)

    # ------------------------------------------------------------------ training / search
    def loss(self, batch: dict[str, torch.Tensor], gen: torch.Generator, trade_off: float) -> torch.Tensor:
        """``trade_off * MSE(predictor) + (1 - trade_off) * NLL(reconstruction)`` (NAO's loss)."""
        tokens = batch["tokens"]  # (B, T)
        outputs, emb = self.encode(tokens, gen)
        pred = self.predict(emb, gen)
        logits = self.decode_logits(outputs, emb, tokens, gen)  # (B, T, V)
        nll = F.cross_entropy(logits.flatten(0, 1), tokens.flatten())
        return trade_off * F.mse_loss(pred, batch["acc"]) + (1 - trade_off) * nll

    def gradient(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder outputs ``(B, T, H)`` and the gradient of predicted accuracy with respect to them."""
        with torch.enable_grad():
            outputs, _ = self.encode(tokens)
            outputs = outputs.detach().requires_grad_(True)
            pred = self.predict(self.pool(outputs))
            (grad,) = torch.autograd.grad(pred.sum(), outputs)
        return outputs.detach(), grad

    def move(self, outputs: torch.Tensor, grad: torch.Tensor, step: float) -> tuple[torch.Tensor, torch.Tensor]:
        """NAO's update: ``normalize(outputs + step * grad)`` and its pooled embedding."""
        new = F.normalize(outputs + step * grad, dim=-1)  # (B, T, H)
        return new, self.pool(new)
