"""`ArchSearcher`: the contract every raynas strategy follows, on top of Ray Tune's `Searcher`.

The base class owns everything strategies share:

* the seeded ``numpy.random.Generator`` (``self.rng``) that every random choice flows from;
* the history of (architecture, result) and the set of keys already proposed, so that a cell
  (up to isomorphism) is never proposed twice;
* partial tables (``candidates``) and resource limits (``max_cost``), checked on every proposal;
* stable feeding: results that arrive between two ``suggest`` calls are handed to the strategy
  sorted by suggestion index, so the same seed and worker count give the same run;
* versioned, atomic ``save``/``restore`` of all of the above plus the strategy's own state, as
  plain data that cannot run code when read (:mod:`raynas._state`).

A strategy implements :meth:`_propose` (one architecture, or ``None`` to fall back to a random
unseen cell) and, if it learns, :meth:`_observe`, :meth:`_state_dict` and
:meth:`_load_state_dict`. Its settings are one typed dataclass, ``config_class``; every
strategy has the same constructor, ``Strategy(space, *, config=Config(), **base)``, where
``base`` are the keyword arguments of :class:`ArchSearcher` (:data:`BASE_OPTIONS`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
from ray.tune.search import Searcher

from raynas._errors import InvalidArchitectureError
from raynas._state import dump_state, load_state
from raynas.searchers._config import NoConfig, check_config
from raynas.spaces import Arch, Space, get_space

_STATE_VERSION = 1
CostFn = Callable[[Arch], dict[str, float]]


#: The keyword arguments every strategy takes besides ``space`` and ``config``.
BASE_OPTIONS = ("metric", "mode", "seed", "candidates", "cost_fn", "max_cost", "max_retries")


class ArchSearcher(Searcher):
    """Base class of architecture searchers.

    Args:
        space: The search space (a :class:`~raynas.spaces.Space` or its name).
        config: The strategy's settings, an instance of its ``config_class`` (defaults: the
            paper's values). ``get_searcher(name, space, **options)`` builds it from flat options.
        metric: Result key to optimise, e.g. ``"val_accuracy"``.
        mode: ``"max"`` or ``"min"``.
        seed: Seed of the searcher's random generator.
        candidates: Architectures of a partial table; when given, only these are proposed. A
            mapping ``key -> arch`` (a table's own keys) spares hashing every candidate.
        cost_fn: ``arch -> {"flops": ..., "params": ...}``; with ``max_cost`` and no ``cost_fn``
            the space's cost model (``space.cost``: real params and FLOPs of the network of
            the image spaces) is used.
        max_cost: Resource limits, e.g. ``{"flops": 2e7}``; every proposal respects them.
        max_retries: Proposals tried before falling back to a random unseen cell.
    """

    #: Registry name of the strategy.
    name: ClassVar[str] = ""
    #: The dataclass of the strategy's settings.
    config_class: ClassVar[type] = NoConfig
    #: Whether a study of this strategy gets a GPU where the cluster has one (neural controllers).
    wants_gpu: ClassVar[bool] = False

    def __init__(
        self,
        space: Space | str,
        *,
        config: Any = None,
        metric: str | None = None,
        mode: str | None = None,
        seed: int = 0,
        candidates: Iterable[Arch] | Mapping[str, Arch] | None = None,
        cost_fn: CostFn | None = None,
        max_cost: dict[str, float] | None = None,
        max_retries: int = 100,
    ):
        if mode not in (None, "max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        super().__init__(metric=metric, mode=mode)
        owner = self.name or type(self).__name__
        self.config = check_config(self.config_class() if config is None else config, self.config_class, owner)
        self.space = get_space(space) if isinstance(space, str) else space
        if max_cost and cost_fn is None:
            probe = self.space.sample(np.random.default_rng(0))
            if self.space.cost(probe) is None:
                raise ValueError(f"max_cost needs a cost_fn: space {self.space.name!r} has no cost model; "
                                 "pass cost_fn=arch -> {'flops': ..., 'params': ...}")
            cost_fn = self.space.cost
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.cost_fn = cost_fn
        self.max_cost = dict(max_cost or {})
        self.max_retries = int(max_retries)
        self.candidates: list[Arch] | None = None
        self._candidate_order: list[str] = []  # key of each candidate, in order
        self._candidate_tokens: dict[str, np.ndarray] = {}  # encoding -> (N, L) token matrix
        self._candidate_ok: dict[int, bool] = {}  # candidate index -> within max_cost
        self._open_cache: tuple[int, np.ndarray] | None = None  # (len(seen), open mask)
        if candidates is not None:
            if isinstance(candidates, Mapping):  # key -> arch (a table's own keys: no rehashing)
                self.candidates = list(candidates.values())
                self._candidate_order = [str(k) for k in candidates]
            else:
                self.candidates = list(candidates)
                self._candidate_order = [self.space.key(a) for a in self.candidates]
        # key -> index of its first candidate: membership of the table and positions in its arrays
        self._candidate_pos = {key: i for i, key in reversed(list(enumerate(self._candidate_order)))}
        self.history: list[dict[str, Any]] = []  # one entry per finished trial, in feed order
        self.seen: set[str] = set()  # keys proposed so far (finished or in flight)
        self.live: dict[str, tuple[int, Arch]] = {}  # trial_id -> (suggestion index, arch)
        self.pending: list[tuple[int, Arch, dict | None, bool]] = []  # finished, not yet fed
        self.n_suggested = 0
        self.n_fallbacks = 0

    # ------------------------------------------------------------------ Tune API
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec) -> bool:
        if self._metric is None and metric:
            self._metric = metric
        if self._mode is None and mode:
            self._mode = mode
        return True

    def suggest(self, trial_id: str) -> dict | None:
        if self._metric is None or self._mode is None:
            raise RuntimeError(f"{type(self).__name__} needs metric and mode before suggesting")
        self._flush()
        arch = self._next_arch()
        if arch is None:
            return Searcher.FINISHED
        self.seen.add(self.space.key(arch))
        self.live[trial_id] = (self.n_suggested, arch)
        self.n_suggested += 1
        return self.space.to_config(arch)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        entry = self.live.pop(trial_id, None)
        if entry is None:  # not ours (e.g. added by hand) or already recorded
            return
        index, arch = entry
        if not error and (result is None or self._metric not in result):
            error = True
        self.pending.append((index, arch, None if error else dict(result), bool(error)))

    def _flush(self) -> None:
        """Feed finished trials to the strategy in suggestion order."""
        if not self.pending:
            return
        self.pending.sort(key=lambda item: item[0])
        for index, arch, result, error in self.pending:
            score = None if error else self.score(result)
            self.history.append(
                {"index": index, "key": self.space.key(arch), "arch": arch, "result": result,
                 "score": score, "error": error}
            )
            self._observe(arch, score, result)
        self.pending.clear()

    def score(self, result: dict) -> float:
        """The result as a number to maximise."""
        value = float(result[self._metric])
        return value if self._mode == "max" else -value

    # ------------------------------------------------------------------ proposals
    def _next_arch(self) -> Arch | None:
        for _ in range(self.max_retries):
            try:
                arch = self._propose()
            except InvalidArchitectureError:
                continue
            if arch is None:
                break
            if self.allowed(arch):
                return arch
        self.n_fallbacks += 1
        return self.random_unseen()

    def allowed(self, arch: Arch) -> bool:
        """Valid, not yet proposed, tabulated (for partial tables) and within ``max_cost``."""
        try:
            key = self.space.key(arch)
        except InvalidArchitectureError:
            return False
        if key in self.seen:
            return False
        if self.candidates is not None and key not in self._candidate_pos:
            return False
        return self.within_limits(arch)

    def within_limits(self, arch: Arch) -> bool:
        if not self.max_cost:
            return True
        cost = self.cost_fn(arch)  # type: ignore[misc]
        return all(cost.get(name, np.inf) <= limit for name, limit in self.max_cost.items())

    def random_arch(self) -> Arch:
        """A random architecture (from the candidates of a partial table, if any)."""
        if self.candidates is not None:
            return self.candidates[int(self.rng.integers(len(self.candidates)))]
        return self.space.sample(self.rng)

    def random_unseen(self, tries: int = 2000) -> Arch | None:
        """A random allowed architecture, or None when none is left."""
        if self.candidates is not None:
            left = self._open_candidates()
            return self.candidates[left[int(self.rng.integers(len(left)))]] if len(left) else None
        for _ in range(tries):
            arch = self.space.sample(self.rng)
            if self.allowed(arch):
                return arch
        return None

    # ------------------------------------------------------------------ partial tables
    def _open_candidates(self) -> np.ndarray:
        """Indices of the candidates still allowed (not proposed, within ``max_cost``), in order."""
        return np.flatnonzero(self._open_mask())

    def _open_mask(self) -> np.ndarray:
        """Boolean mask of the allowed candidates; recomputed only after new proposals."""
        if self._open_cache is None or self._open_cache[0] != len(self.seen):
            seen = self.seen
            mask = np.fromiter((key not in seen for key in self._candidate_order), bool, len(self._candidate_order))
            if self.max_cost:
                ok = self._candidate_ok
                for i in np.flatnonzero(mask):
                    if i not in ok:
                        ok[i] = self.within_limits(self.candidates[i])  # type: ignore[index]
                    mask[i] = ok[i]
            self._open_cache = (len(seen), mask)
        return self._open_cache[1]

    def tokens_of(self, arch: Arch, full: bool = False) -> list[int]:
        """``space.to_sequence(arch)``, or with ``full`` ``space.to_full_sequence(arch)`` (the
        encoding samplers and controllers use)."""
        return self.space.to_full_sequence(arch) if full else self.space.to_sequence(arch)

    def candidate_tokens(self, full: bool = False) -> np.ndarray:
        """``(N, L)`` token sequences (:meth:`tokens_of`) of the candidates, computed once."""
        name = "full" if full else "sequence"
        if name not in self._candidate_tokens:
            seqs = [self.tokens_of(a, full) for a in self.candidates or []]
            self._candidate_tokens[name] = np.array(seqs, dtype=np.int64).reshape(len(seqs), -1)
        return self._candidate_tokens[name]

    def nearest_candidate(self, tokens: Iterable[int], full: bool = False, exclude: Iterable[str] = ()) -> Arch | None:
        """The allowed candidate nearest to a token sequence (Hamming distance), or None.

        How proposals that leave a partial table come back to it: the cell of the table that
        differs from ``tokens`` (a :meth:`tokens_of` with the same ``full``) in the fewest
        positions, among the candidates not proposed yet, within ``max_cost`` and not in
        ``exclude`` (keys); ties are broken at random with ``self.rng``.
        """
        mask = self._open_mask()
        drop = [self._candidate_pos[k] for k in exclude if k in self._candidate_pos]
        if drop:
            mask = mask.copy()
            mask[drop] = False
        left = np.flatnonzero(mask)
        if not len(left):
            return None
        seq = np.asarray(list(tokens), dtype=np.int64)
        dist = (self.candidate_tokens(full)[left] != seq).sum(axis=1)  # (n_left,)
        ties = left[dist == dist.min()]
        return self.candidates[int(ties[int(self.rng.integers(len(ties)))])]  # type: ignore[index]

    # ------------------------------------------------------------------ state shared by studies
    @classmethod
    def shared_payload(cls, space: Space, options: dict[str, Any]) -> Any:
        """What every study of this strategy with these ``options`` shares, loaded once (or None).

        The runner calls it once on the driver and ships the result to the workers through Ray's
        object store, where :meth:`install_payload` puts it in place before the studies start
        (arch2vec: the pretrained embeddings). The default shares nothing.
        """
        return None

    @classmethod
    def install_payload(cls, payload: Any) -> None:
        """Put a :meth:`shared_payload` in place in this process."""

    def _propose(self) -> Arch | None:
        """The strategy's next architecture; None falls back to a random unseen cell."""
        return None

    def _observe(self, arch: Arch, score: float | None, result: dict | None) -> None:
        """Learn from one finished trial; ``score`` is None when it failed."""

    # ------------------------------------------------------------------ helpers for strategies
    @property
    def evaluated(self) -> list[dict[str, Any]]:
        """History entries that succeeded."""
        return [h for h in self.history if not h["error"]]

    def best(self) -> dict[str, Any] | None:
        ok = self.evaluated
        return max(ok, key=lambda h: h["score"]) if ok else None

    # ------------------------------------------------------------------ state
    def _state_dict(self) -> dict[str, Any]:
        """The strategy's own state (plain data; torch models as ``state_dict``)."""
        return {}

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`_state_dict`."""

    def get_state(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "class": type(self).__name__,
            "metric": self._metric,
            "mode": self._mode,
            "seed": self.seed,
            "config": dataclasses.asdict(self.config),
            "rng": self.rng.bit_generator.state,
            "history": self.history,
            "seen": sorted(self.seen),
            "live": self.live,
            "pending": self.pending,
            "n_suggested": self.n_suggested,
            "n_fallbacks": self.n_fallbacks,
            "strategy": self._state_dict(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != _STATE_VERSION or state.get("class") != type(self).__name__:
            raise ValueError(
                f"cannot restore a {state.get('class')} v{state.get('version')} state into "
                f"{type(self).__name__} v{_STATE_VERSION}"
            )
        self._metric, self._mode = state["metric"], state["mode"]
        self.seed = state["seed"]
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self.history = list(state["history"])
        self.seen = set(state["seen"])
        self.live = dict(state["live"])
        self.pending = list(state["pending"])
        self.n_suggested = state["n_suggested"]
        self.n_fallbacks = state["n_fallbacks"]
        self._open_cache = None
        self._load_state_dict(state["strategy"])

    def save(self, checkpoint_path: str) -> None:
        """Write the state atomically as plain data (:func:`raynas._state.dump_state`, no pickle)."""
        dump_state(self.get_state(), checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        """Read a state written by :meth:`save`; a pickle or any other file is refused, never run."""
        self.set_state(load_state(checkpoint_path))
