"""arch2vec's variational graph isomorphism autoencoder (Yan et al., NeurIPS 2020, Sec. 3).

* Encoder (Eq. 1-2): a GIN over ``(X, Ã)`` gives every vertex ``i`` its own
  ``q(z_i | X, Ã) = N(mu_i, diag(sigma_i^2))``.
* Decoder (Eq. 3-4): ``p(Â_ij = 1 | z_i, z_j) = sigmoid(z_iᵀ z_j)`` and
  ``p(X̂_i = k | z_i) = softmax(W_o z_i + b_o)_k``.
* Objective (Eq. 5): reconstruction (adjacency BCE + ops cross-entropy) plus KL to ``N(0, I)``.
* Embedding of a cell: the mean of its vertices' ``mu`` (the published code's readout).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from raynas.searchers._neural._gin import GINEncoder
from raynas.searchers._neural._seq2seq import dropout


@dataclass(frozen=True)
class VAEShape:
    """Sizes of the autoencoder; defaults from the paper and its published code."""

    n_ops: int  # op columns of ``to_graph`` plus the padding column
    latent_size: int = 16
    hidden_size: int = 128
    gin_layers: int = 4
    mlp_layers: int = 2
    dropout: float = 0.3  # on z before decoding (the published code's "implicit regularization")


class Arch2VecVAE(nn.Module):
    """The autoencoder; all tensors are dense batches ``ops (B, N, F)``, ``adj (B, N, N)``."""

    def __init__(self, shape: VAEShape):
        super().__init__()
        self.shape = shape
        self.encoder = GINEncoder(shape.n_ops, shape.hidden_size, shape.gin_layers, shape.mlp_layers)
        self.fc_mu = nn.Linear(shape.hidden_size, shape.latent_size)
        self.fc_logvar = nn.Linear(shape.hidden_size, shape.latent_size)
        self.ops_head = nn.Linear(shape.latent_size, shape.n_ops)  # W_o, b_o

    def encode(self, ops: torch.Tensor, adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, log sigma^2)``, each ``(B, N, D)``."""
        h = self.encoder(ops, adj)  # (B, N, H)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(ops (B, N, F), adj (B, N, N))``; ``sigmoid(adj)`` is Eq. 3's ``sigma(z_iᵀ z_j)``."""
        return self.ops_head(z), z @ z.transpose(1, 2)

    @torch.no_grad()
    def embed(self, ops: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        """``(B, D)``: the mean over vertices of ``mu`` (eval mode: batch norm's running stats)."""
        was = self.training
        self.eval()
        mu, _ = self.encode(ops, adj)
        self.train(was)
        return mu.mean(dim=1)

    def loss(self, ops: torch.Tensor, adj: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Negative Eq. 5 for one minibatch, with noise and dropout drawn from ``gen``."""
        b, n, _ = ops.shape
        mu, logvar = self.encode(ops, adj)  # (B, N, D) each
        eps = torch.randn(mu.shape, generator=gen).to(mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps  # reparameterisation
        z = dropout(z, self.shape.dropout, self.training, gen)
        ops_logits, adj_logits = self.decode(z)
        ce_ops = F.cross_entropy(ops_logits.reshape(b * n, -1), ops.argmax(-1).reshape(-1))
        upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=adj.device), diagonal=1)
        # The cells are DAGs in topological order: the upper triangle of A holds every edge.
        bce_adj = F.binary_cross_entropy_with_logits(adj_logits[:, upper], adj[:, upper])
        # KL(q || N(0, I)), scaled by 1 / (B N) as in the published code.
        kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)) / (b * n)
        return ce_ops + bce_adj + kl

    @torch.no_grad()
    def reconstruct(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoded ``(op classes (B, N), upper-triangular 0/1 adjacency (B, N, N))``."""
        ops_logits, adj_logits = self.decode(z)
        n = z.shape[1]
        upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=z.device), diagonal=1)
        return ops_logits.argmax(-1), ((adj_logits > 0) & upper).to(torch.int8)
