"""Joint architecture and hyperparameter search: a NAS searcher proposes the cell, a Tune searcher the rest.

:class:`JointSearcher` is one Ray Tune :class:`~ray.tune.search.Searcher` made of two: an
:class:`~raynas.searchers.ArchSearcher` for the architecture and any Tune searcher for the
training hyperparameters (Optuna's TPE by default). A trial's config is the architecture's
config plus ``{"hparams": {...}}``. Every result, intermediate and final, goes to both, so both
learn from the same trained network; a trial stopped early by ASHA or HyperBand reaches them
with the result (and ``training_iteration``) it had when it stopped. ``save``/``restore`` write
and read both states in one file, so a restored experiment continues both searches where they
were (``Tuner.restore`` does not call ``set_search_properties`` again).

Example:
    >>> from ray import tune
    >>> from raynas.searchers import get_searcher
    >>> arch = get_searcher("evolution", "nasbench201", metric="val_accuracy", mode="max", seed=0)
    >>> joint = JointSearcher(arch, {"lr": tune.loguniform(1e-3, 0.2)}, seed=0)
    >>> config = joint.suggest("t1")
    >>> sorted(config["hparams"]), len(config) - 1
    (['lr'], 6)
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from ray.tune.search import Searcher

from raynas._state import dump_state, load_state
from raynas.searchers._base import ArchSearcher

#: The key of the hyperparameters in a trial's config.
HPARAMS_KEY = "hparams"
_STATE_VERSION = 1


class JointSearcher(Searcher):
    """Search an architecture and its training hyperparameters together.

    Args:
        arch_searcher: The NAS strategy (e.g. ``get_searcher("dnas", space, ...)``).
        hparams: Hyperparameter name -> Ray Tune domain (``tune.loguniform(1e-3, 0.2)``,
            ``tune.choice([64, 128])``, ...); may be omitted when ``hparam_searcher`` already
            has its search space.
        hparam_searcher: Any Tune searcher for the hyperparameters; None: Optuna's TPE
            (``OptunaSearch`` with ``TPESampler(seed=seed)``).
        metric: Metric both searchers optimise; default: the architecture searcher's.
        mode: "max" or "min"; default: the architecture searcher's.
        seed: Seed of the default hyperparameter searcher.

    Raises:
        ValueError: no hyperparameters to search, or a name that is not a string.
    """

    def __init__(
        self,
        arch_searcher: ArchSearcher,
        hparams: dict[str, Any] | None = None,
        hparam_searcher: Searcher | None = None,
        *,
        metric: str | None = None,
        mode: str | None = None,
        seed: int = 0,
    ):
        metric = metric or arch_searcher.metric
        mode = mode or arch_searcher.mode
        super().__init__(metric=metric, mode=mode)
        if not isinstance(arch_searcher, ArchSearcher):
            raise TypeError(f"arch_searcher must be an ArchSearcher, got {type(arch_searcher).__name__}")
        if hparam_searcher is None and not hparams:
            raise ValueError("give the hyperparameters to search, e.g. {'lr': tune.loguniform(1e-3, 0.2)}")
        self.arch = arch_searcher
        self.arch.set_search_properties(metric, mode, {})
        if hparam_searcher is None:
            import optuna
            from ray.tune.search.optuna import OptunaSearch

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            sampler = optuna.samplers.TPESampler(seed=seed)
            space = OptunaSearch.convert_search_space(dict(hparams))  # Tune domains -> Optuna's
            hparam_searcher = OptunaSearch(space, metric=metric, mode=mode, sampler=sampler)
        elif hparams:
            hparam_searcher.set_search_properties(metric, mode, dict(hparams))
        self.hp = hparam_searcher

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec) -> bool:
        """Fill in a metric and mode not given so far; the search spaces are fixed at construction."""
        if self._metric is None and metric:
            self._metric = metric
        if self._mode is None and mode:
            self._mode = mode
        self.arch.set_search_properties(self._metric, self._mode, {})
        return True

    def suggest(self, trial_id: str) -> dict | None:
        hp = self.hp.suggest(trial_id)
        if not isinstance(hp, dict):  # None (wait) or FINISHED
            return hp
        arch = self.arch.suggest(trial_id)
        if not isinstance(arch, dict):
            # No cell (the space is exhausted): the hyperparameter trial will never run.
            self.hp.on_trial_complete(trial_id, None, error=True)
            return arch
        return {**arch, HPARAMS_KEY: hp}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.arch.on_trial_result(trial_id, result)
        self.hp.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.arch.on_trial_complete(trial_id, result, error)
        self.hp.on_trial_complete(trial_id, result, error)

    # ------------------------------------------------------------------ state
    def save(self, checkpoint_path: str) -> None:
        """Write both searchers' states to one file, atomically.

        The architecture searcher's state is plain data (:mod:`raynas._state`); the
        hyperparameter searcher's is whatever its own ``save`` writes (a pickle, for Tune's
        searchers), kept as bytes and read by its own ``restore``.
        """
        folder = os.path.dirname(os.path.abspath(checkpoint_path))
        os.makedirs(folder, exist_ok=True)
        fd, hp_tmp = tempfile.mkstemp(dir=folder, prefix=".hparams-")
        os.close(fd)
        try:
            self.hp.save(hp_tmp)
            with open(hp_tmp, "rb") as fh:
                hp_state = fh.read()
        finally:
            os.unlink(hp_tmp)
        state = {
            "version": _STATE_VERSION, "metric": self._metric, "mode": self._mode,
            "arch": self.arch.get_state(), "hparams": hp_state,
        }
        dump_state(state, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        state = load_state(checkpoint_path)
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            raise ValueError(f"{checkpoint_path} is not a JointSearcher state (version {_STATE_VERSION})")
        self._metric, self._mode = state["metric"], state["mode"]
        self.arch.set_state(state["arch"])
        fd, hp_tmp = tempfile.mkstemp(prefix=".hparams-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(state["hparams"])
            self.hp.restore(hp_tmp)
        finally:
            os.unlink(hp_tmp)
