"""The iterate-train-generate loop that NAO, SemiNAS and DNAS share (DNAS's Algorithm 1).

A study starts with ``n_initial`` random cells. After that, proposals come from a queue: when
the queue runs dry, the controller is trained on every trial that has finished so far (workers
may still be busy with others), a batch of new candidates is generated and ranked, and the best
``batch`` of them are queued. A caller is never held up for more than one training round: if
nothing new has finished since the last round, the searcher falls back to a random unseen cell.
The number of iterations ``L`` of the papers' loops follows from the query budget:
``L = ceil((budget - n_initial) / batch)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from raynas._errors import InvalidArchitectureError
from raynas.searchers._base import ArchSearcher
from raynas.searchers._config import require
from raynas.searchers._neural._seq2seq import (
    DecodeStats,
    Normaliser,
    resolve_device,
    tensor_state,
    torch_generator,
    torch_threads,
)
from raynas.spaces import Arch

_LOOP_VERSION = 1


def check_loop_sizes(config: Any) -> None:
    """Range checks shared by the controller searchers' configs (call from ``__post_init__``)."""
    for name in ("n_initial", "batch", "train_batch_size", "up_sample"):
        require(getattr(config, name) >= 1, f"{name} must be >= 1, got {getattr(config, name)}")
    for name in ("pretrain_epochs", "epochs", "warmup_epochs", "repairs", "n_unlabeled"):
        require(getattr(config, name) >= 0, f"{name} must be >= 0, got {getattr(config, name)}")
    require(config.num_threads is None or config.num_threads >= 1,
            f"num_threads must be >= 1 or null, got {config.num_threads}")
    try:
        if config.device != "auto":
            torch.device(config.device)
    except RuntimeError:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {config.device!r}") from None


class ControllerSearcher(ArchSearcher):
    """Base of the controller-based searchers; subclasses implement the round.

    Subclasses call :meth:`_setup_loop` in ``__init__`` and implement :meth:`_build`
    (create ``self.model`` and ``self.optimizer``), :meth:`_train` and :meth:`_generate`.
    """

    wants_gpu = True  # the controller trains faster on a GPU where the cluster has one
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer

    def _setup_loop(
        self, n_initial: int, batch: int, device: str, num_threads: int | None = 1, cost_metric: str | None = None
    ) -> None:
        self.n_initial = int(n_initial)
        self.batch = int(batch)
        self.device = resolve_device(device)
        self.num_threads = num_threads
        # The cost a FLOPs-like predictor learns: the constrained one, else FLOPs.
        self.cost_metric = cost_metric or (next(iter(self.max_cost)) if self.max_cost else "flops")
        self.queue: list[Arch] = []
        self.rounds = 0
        self.trained_on = 0  # len(self.history) at the last round
        self.decode_stats = DecodeStats()
        self.acc_norm = Normaliser()
        self.cost_norm = Normaliser(log=True)
        self.last_loss = float("nan")
        self._build(torch_generator(self.rng))

    # ------------------------------------------------------------------ hooks
    def _build(self, gen: torch.Generator) -> None:
        raise NotImplementedError

    def _train(self, archs: list[Arch], scores: np.ndarray, gen: torch.Generator) -> None:
        """Train the controller on the evaluated cells (scores are raw, higher is better)."""
        raise NotImplementedError

    def _generate(self, gen: torch.Generator) -> list[Arch]:
        """New allowed, distinct candidates, best first."""
        raise NotImplementedError

    # ------------------------------------------------------------------ costs
    def arch_cost(self, arch: Arch) -> float | None:
        """The cost a FLOPs predictor learns (``cost_fn``, else the space's cost model), or None."""
        cost = self.cost_fn(arch) if self.cost_fn is not None else self.space.cost(arch)
        if not cost or self.cost_metric not in cost:
            return None
        value = float(cost[self.cost_metric])
        return value if np.isfinite(value) and value > 0 else None

    @property
    def has_cost_model(self) -> bool:
        """Whether a cost is known for cells (checked on one random cell, cached)."""
        if not hasattr(self, "_has_cost"):
            probe = self.space.sample(np.random.default_rng(0)) if self.candidates is None else self.candidates[0]
            try:
                self._has_cost = self.arch_cost(probe) is not None
            except Exception:  # a cost_fn over a partial table may not know a random cell
                self._has_cost = False
        return self._has_cost

    # ------------------------------------------------------------------ proposals
    def _propose(self) -> Arch | None:
        if self.n_suggested < self.n_initial:
            return self.random_arch()
        arch = self._pop()
        if arch is not None:
            return arch
        if len(self.history) == self.trained_on or len(self.evaluated) < 2:
            return None  # nothing new to learn from: a random cell, not a second round
        self._round()
        return self._pop()

    def _pop(self) -> Arch | None:
        while self.queue:
            arch = self.queue.pop(0)
            if self.allowed(arch):
                return arch
        return None

    def _round(self) -> None:
        gen = torch_generator(self.rng)
        ev = self.evaluated
        archs = [h["arch"] for h in ev]
        scores = np.array([h["score"] for h in ev], dtype=np.float64)
        with torch_threads(self.num_threads):
            self._train(archs, scores, gen)
            self.queue = self._generate(gen)[: self.batch]
        self.trained_on = len(self.history)
        self.rounds += 1

    def _step_schedule(self, decode_at: Any, max_steps: int) -> tuple[list[Arch], set[str], int]:
        """NAO's step schedule: decode at steps ``t = 1, 2, ...`` until ``batch`` new cells appear.

        ``decode_at(t)`` gives the cells (None where decoding failed) decoded at step ``t``.
        Returns the new allowed cells in order, their keys, and the last step taken.
        """
        new: list[Arch] = []
        keys: set[str] = set()
        steps = 0
        for steps in range(1, max_steps + 1):
            self._keep_new(decode_at(steps), new, keys)
            if len(new) >= self.batch:
                break
        return new, keys, steps

    def _keep_new(self, archs: list[Arch | None], new: list[Arch], keys: set[str], most: int | None = None) -> None:
        """Append to ``new`` the allowed cells of ``archs`` not yet in ``keys`` (up to ``most`` in all)."""
        for arch in archs:
            if most is not None and len(new) >= most:
                return
            if arch is not None and not self.allowed(arch):
                arch = self._into_table(arch, keys)
            if arch is None:
                continue
            key = self.space.key(arch)
            if key not in keys:
                keys.add(key)
                new.append(arch)

    def _into_table(self, arch: Arch, taken: set[str]) -> Arch | None:
        """A new cell that a partial table lacks, replaced by its nearest new tabulated cell.

        On a partial table a decoded cell is rarely tabulated. A decode that is new (not
        proposed yet) and valid but untabulated stands for the nearest candidate in the
        controller's token encoding (Hamming distance; :meth:`nearest_candidate`) that is not
        proposed yet nor in ``taken``; decodes that repeat a proposed cell stay rejected, so
        the step schedule still grows until the controller moves to new cells. Full tables:
        None (the decode is simply not allowed).
        """
        if self.candidates is None:
            return None
        try:
            key = self.space.key(arch)
        except InvalidArchitectureError:
            return None
        if key in self.seen or key in self._candidate_pos:
            return None  # not new, or tabulated and over max_cost
        return self.nearest_candidate(self.tokens_of(arch, full=True), full=True, exclude=taken)

    @property
    def validity_rate(self) -> float:
        """Fraction of decoded latents that gave a valid cell (greedy or repaired)."""
        return self.decode_stats.validity_rate

    # ------------------------------------------------------------------ state
    def _loop_state(self) -> dict[str, Any]:
        return {
            "loop_version": _LOOP_VERSION,
            "model": tensor_state(self.model.state_dict()),
            "optimizer": tensor_state(self.optimizer.state_dict()),
            "queue": list(self.queue),
            "rounds": self.rounds,
            "trained_on": self.trained_on,
            "decode_stats": self.decode_stats.to_dict(),
            "acc_norm": self.acc_norm.to_dict(),
            "cost_norm": self.cost_norm.to_dict(),
            "last_loss": self.last_loss,
        }

    def _load_loop_state(self, state: dict[str, Any]) -> None:
        if state.get("loop_version") != _LOOP_VERSION:
            raise ValueError(f"controller state v{state.get('loop_version')} is not v{_LOOP_VERSION}")
        self.model.load_state_dict({k: v.to(self.device) for k, v in state["model"].items()})
        self.optimizer.load_state_dict(state["optimizer"])
        self.queue = list(state["queue"])
        self.rounds = state["rounds"]
        self.trained_on = state["trained_on"]
        self.decode_stats = DecodeStats(**state["decode_stats"])
        self.acc_norm = Normaliser(**state["acc_norm"])
        self.cost_norm = Normaliser(**state["cost_norm"])
        self.last_loss = state["last_loss"]

    def _state_dict(self) -> dict[str, Any]:
        return self._loop_state()

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_loop_state(state)
