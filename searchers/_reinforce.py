"""REINFORCE (Williams, 1992) on a factorized categorical policy over the token sequence.

The policy has one independent softmax per sequence position, restricted to the tokens the
space allows there (``space.token_mask()``). After each result the logits move along
``lr * (reward - baseline) * grad log p(tokens)``, where the baseline is an exponential moving
average of rewards (momentum 0.9). Rewards are the score times ``reward_scale`` (0.01 turns an
accuracy in percent into [0, 1]).

On a partial table the policy is sampled restricted to the table: each unproposed tabulated
cell is drawn with probability proportional to its probability under the policy, exactly the
policy conditioned on the table, with no rejection loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from raynas.searchers._base import ArchSearcher
from raynas.searchers._config import option, require
from raynas.spaces import Arch


@dataclass(frozen=True)
class ReinforceConfig:
    """REINFORCE settings.

    Attributes:
        learning_rate: Step size on the logits.
        baseline_decay: Momentum of the reward baseline.
        reward_scale: Rewards are ``score * reward_scale`` (0.01 turns percent into [0, 1]).
    """

    learning_rate: float = option(0.01, "step size of the policy logits")
    baseline_decay: float = option(0.9, "momentum of the moving-average reward baseline")
    reward_scale: float = option(0.01, "reward = score x reward_scale (0.01 turns percent into [0, 1])")

    def __post_init__(self) -> None:
        require(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        require(0 <= self.baseline_decay < 1, f"baseline_decay must be in [0, 1), got {self.baseline_decay}")


class ReinforceSearcher(ArchSearcher):
    """REINFORCE with a moving-average baseline.

    Args:
        space: The search space.
        config: :class:`ReinforceConfig`.
        **base: :class:`ArchSearcher` arguments.
    """

    name = "reinforce"
    config_class = ReinforceConfig

    def __init__(self, space, *, config: ReinforceConfig | None = None, **base: Any):
        super().__init__(space, config=config, **base)
        self.mask = self.space.token_mask()  # (L, V)
        self.logits = np.zeros(self.mask.shape)  # (L, V)
        self.baseline: float | None = None

    def _probs(self) -> np.ndarray:
        z = np.where(self.mask, self.logits, -np.inf)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def _propose(self) -> Arch | None:
        probs = self._probs()
        if self.candidates is not None:
            return self._propose_in_table(probs)
        u = self.rng.random(len(probs))[:, None]
        tokens = (np.cumsum(probs, axis=1) < u).sum(axis=1)  # inverse-CDF sample per position
        return self.space.from_sequence([int(t) for t in np.minimum(tokens, probs.shape[1] - 1)])

    def _propose_in_table(self, probs: np.ndarray) -> Arch | None:
        """A sample of the policy restricted to the table: ``p(x | x tabulated, not proposed)``.

        Each open candidate's log-probability is the sum over its tokens; padded positions
        (token 0, after an early end) are marginalised out, as ``from_sequence`` ignores them.
        """
        left = self._open_candidates()
        if not len(left):
            return None
        logp = np.log(np.maximum(probs, 1e-300))  # (L, V)
        logp[:, 0] = 0.0
        tokens = self.candidate_tokens()[left]  # (n, L)
        score = logp[np.arange(logp.shape[0]), tokens].sum(axis=1)  # (n,)
        p = np.exp(score - score.max())
        return self.candidates[int(left[self.rng.choice(len(left), p=p / p.sum())])]  # type: ignore[index]

    def _observe(self, arch: Arch, score: float | None, result: dict | None) -> None:
        if score is None:
            return
        c = self.config
        reward = score * c.reward_scale
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        self.baseline = c.baseline_decay * self.baseline + (1 - c.baseline_decay) * reward
        onehot = np.zeros_like(self.logits)
        onehot[np.arange(len(onehot)), self.space.to_sequence(arch)] = 1.0
        grad = onehot - self._probs()  # d log p(tokens) / d logits
        self.logits += c.learning_rate * advantage * grad

    def _state_dict(self) -> dict[str, Any]:
        return {"logits": self.logits.copy(), "baseline": self.baseline}

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self.logits = np.array(state["logits"])
        self.baseline = state["baseline"]
