"""DNGO (Snoek et al., 2015): Bayesian linear regression on the features of a small network,
and expected improvement, as arch2vec-BO uses them (the published code calls pybnn's DNGO).

The network (``D -> 50 -> 50 -> 50 -> 1``, tanh, DNGO's sizes) is fit to the normalised scores
by full-batch Adam; its last hidden layer plus a bias are the basis ``phi`` of a Bayesian linear
regression ``y = wᵀ phi + noise`` with prior ``w ~ N(0, I / alpha)`` and noise precision
``beta``, both set by maximising the evidence with MacKay's fixed-point updates (pybnn samples
them with MCMC instead). ``surrogate="blr"`` runs the regression on the embeddings directly.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import ndtr
from torch import nn

from raynas.searchers._neural._gin import build_seeded


class BayesianLinearRegression:
    """BLR with evidence-maximised ``alpha`` (prior precision) and ``beta`` (noise precision)."""

    def __init__(self, iterations: int = 50):
        self.iterations = iterations

    def fit(self, phi: np.ndarray, y: np.ndarray) -> BayesianLinearRegression:
        phi = np.asarray(phi, np.float64)  # (n, d)
        y = np.asarray(y, np.float64)  # (n,)
        n, d = phi.shape
        gram = phi.T @ phi  # (d, d)
        eig = np.clip(np.linalg.eigvalsh(gram), 0.0, None)  # (d,)
        alpha, beta = 1.0, 1.0 / max(np.var(y), 1e-6)
        for _ in range(self.iterations):  # MacKay (1992): gamma = sum lambda / (lambda + alpha)
            a = alpha * np.eye(d) + beta * gram
            mean = beta * np.linalg.solve(a, phi.T @ y)
            gamma = float(np.sum(beta * eig / (beta * eig + alpha)))
            alpha = max(gamma, 1e-6) / max(float(mean @ mean), 1e-12)
            resid = float(np.sum((y - phi @ mean) ** 2))
            beta = max(n - gamma, 1e-6) / max(resid, 1e-12)
            alpha, beta = float(np.clip(alpha, 1e-6, 1e6)), float(np.clip(beta, 1e-6, 1e6))
        self.cov = np.linalg.inv(alpha * np.eye(d) + beta * gram)  # (d, d)
        self.mean = beta * self.cov @ phi.T @ y  # (d,)
        self.alpha, self.beta = alpha, beta
        return self

    def predict(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and variance, each ``(m,)``."""
        phi = np.asarray(phi, np.float64)
        var = 1.0 / self.beta + np.einsum("md,de,me->m", phi, self.cov, phi)
        return phi @ self.mean, np.maximum(var, 1e-12)


class _Basis(nn.Module):
    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                  nn.Linear(hidden, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(-1)


class Surrogate:
    """``fit(x, y)`` then ``predict(x) -> (mean, variance)`` in the units of ``y``.

    Args:
        kind: ``"dngo"`` (BLR on learned features) or ``"blr"`` (BLR on ``x`` plus a bias).
        hidden: DNGO's width (50).
        steps: Full-batch Adam steps of DNGO's network.
        lr: Its learning rate (pybnn: 0.01).
    """

    def __init__(self, kind: str = "dngo", hidden: int = 50, steps: int = 200, lr: float = 1e-2):
        self.kind, self.hidden, self.steps, self.lr = kind, hidden, steps, lr

    def _features(self, x: np.ndarray) -> np.ndarray:
        xn = (np.asarray(x, np.float64) - self.x_mean) / self.x_std
        if self.kind == "dngo":
            with torch.no_grad():
                xn = self.net.body(torch.as_tensor(xn, dtype=torch.float32)).double().numpy()
        return np.concatenate([xn, np.ones((len(xn), 1))], axis=1)

    def fit(self, x: np.ndarray, y: np.ndarray, gen: torch.Generator) -> Surrogate:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        self.x_mean, self.x_std = x.mean(0), x.std(0) + 1e-8
        self.y_mean, self.y_std = float(y.mean()), float(y.std()) + 1e-8
        yn = (y - self.y_mean) / self.y_std
        if self.kind == "dngo":
            self.net = build_seeded(lambda: _Basis(x.shape[1], self.hidden), gen)
            opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
            xt = torch.as_tensor((x - self.x_mean) / self.x_std, dtype=torch.float32)
            yt = torch.as_tensor(yn, dtype=torch.float32)
            for _ in range(self.steps):
                loss = torch.mean((self.net(xt) - yt) ** 2)
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.blr = BayesianLinearRegression().fit(self._features(x), yn)
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self.blr.predict(self._features(x))
        return mean * self.y_std + self.y_mean, var * self.y_std**2


def expected_improvement(mean: np.ndarray, var: np.ndarray, best: float, xi: float = 0.0) -> np.ndarray:
    """EI of maximisation over ``best``: ``(mu - best - xi) Phi(u) + sigma phi(u)``."""
    sigma = np.sqrt(var)
    imp = mean - best - xi
    u = imp / sigma
    return imp * ndtr(u) + sigma * np.exp(-0.5 * u**2) / np.sqrt(2 * np.pi)
