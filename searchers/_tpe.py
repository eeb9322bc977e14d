"""TPE (Bergstra et al., 2011) through Optuna's ``TPESampler``; no TPE is written here.

Each sequence position of the space is one categorical parameter over the tokens allowed there
(``space.token_mask()``). Proposals that decode to an invalid, disallowed or already proposed
cell are told to Optuna at once (the known value for a duplicate, a failure otherwise) and
another is asked, so no query of the budget is spent on them; after ``max_asks`` such asks the
base class falls back to a random unseen cell, whose result Optuna then learns like any other.

On a partial table TPE's sample (the candidate of best expected improvement, drawn from the
whole space) is projected onto the table: a sample that is not an allowed cell is replaced by
the unproposed tabulated cell nearest to it in token space (Hamming distance;
:meth:`~raynas.searchers.ArchSearcher.nearest_candidate`), and Optuna learns that cell's result
at its own parameters. No rejection loop draws cells until one happens to be tabulated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from raynas._errors import InvalidArchitectureError
from raynas.searchers._base import ArchSearcher
from raynas.searchers._config import option, require
from raynas.spaces import Arch


@dataclass(frozen=True)
class TPEConfig:
    """TPE settings (Optuna's defaults).

    Attributes:
        n_startup_trials: Random trials before TPE kicks in.
        n_ei_candidates: Candidates scored by expected improvement per ask.
        multivariate: Multivariate TPE (Falkner et al. 2018) instead of independent per-parameter.
        max_asks: Asks per proposal before falling back to a random unseen cell.
    """

    n_startup_trials: int = option(10, "random cells before TPE models the results", "10 (Optuna)")
    n_ei_candidates: int = option(24, "candidates scored by expected improvement per proposal", "24 (Optuna)")
    multivariate: bool = option(False, "one joint density over all positions instead of one per position",
                                "false (Optuna)")
    max_asks: int = option(25, "asks per proposal before a random unseen cell is taken instead")

    def __post_init__(self) -> None:
        for name in ("n_startup_trials", "n_ei_candidates", "max_asks"):
            require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")


class TPESearcher(ArchSearcher):
    """Optuna TPE over the space's token sequence.

    Args:
        space: The search space.
        config: :class:`TPEConfig`.
        **base: :class:`ArchSearcher` arguments.
    """

    name = "tpe"
    config_class = TPEConfig

    def __init__(self, space, *, config: TPEConfig | None = None, **base: Any):
        super().__init__(space, config=config, **base)
        mask = self.space.token_mask()
        self.dists = {
            f"t{pos}": CategoricalDistribution([int(t) for t in np.flatnonzero(row)])
            for pos, row in enumerate(mask)
        }
        self.study: optuna.Study | None = None
        self.open: dict[str, int] = {}  # cell key -> number of the Optuna trial awaiting its result

    def _make_study(self, seed: int | None = None) -> optuna.Study:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        c = self.config
        sampler = optuna.samplers.TPESampler(
            n_startup_trials=c.n_startup_trials,
            n_ei_candidates=c.n_ei_candidates,
            multivariate=c.multivariate,
            seed=int(self.rng.integers(2**31 - 1)) if seed is None else seed,
        )
        return optuna.create_study(direction="maximize", sampler=sampler)

    def _propose(self) -> Arch | None:
        if self.study is None:
            self.study = self._make_study()
        known = {h["key"]: h["score"] for h in self.history if not h["error"]}
        for _ in range(self.config.max_asks):
            trial = self.study.ask(self.dists)
            tokens = [trial.params[f"t{pos}"] for pos in range(len(self.dists))]
            try:
                arch = self.space.from_sequence(tokens)
                key = self.space.key(arch)
            except InvalidArchitectureError:
                arch = key = None
            if key in known:  # a duplicate teaches TPE the value it already has
                self.study.tell(trial, known[key])
                continue
            if arch is not None and self.allowed(arch):
                self.open[key] = trial.number
                return arch
            self.study.tell(trial, state=TrialState.FAIL)
            if self.candidates is not None:  # a partial table: the sample's nearest tabulated cell
                return self.nearest_candidate(tokens, full=True)  # learnt as a point of its own
        return None

    def _observe(self, arch: Arch, score: float | None, result: dict | None) -> None:
        if self.study is None:
            self.study = self._make_study()
        number = self.open.pop(self.space.key(arch), None)
        if number is not None:
            if score is None:
                self.study.tell(number, state=TrialState.FAIL)
            else:
                self.study.tell(number, score)
        elif score is not None:  # proposed by the fallback: teach TPE the point anyway
            # Spaces whose sequences pad short cells (NB101) give a pad-free form for samplers.
            tokens = self.space.to_full_sequence(arch)
            params = {f"t{i}": t for i, t in enumerate(tokens)}
            self.study.add_trial(
                optuna.trial.create_trial(params=params, distributions=self.dists, value=score)
            )

    def _state_dict(self) -> dict[str, Any]:
        # The study as plain data: its trials (all over self.dists) and the sampler's two
        # generators (TPE's own and that of its random start-up sampler).
        study = None
        if self.study is not None:
            sampler = self.study.sampler
            study = {
                "trials": [{"state": t.state.name, "params": dict(t.params), "value": t.value}
                           for t in self.study.get_trials(deepcopy=False)],
                "rng": sampler._rng.rng.get_state(legacy=False),
                "random_rng": sampler._random_sampler._rng.rng.get_state(legacy=False),
            }
        return {"study": study, "open": dict(self.open)}

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self.open = dict(state["open"])
        self.study = None
        saved = state["study"]
        if saved is None:
            return
        self.study = self._make_study(seed=0)  # its generators are set from the state below
        for t in saved["trials"]:
            self.study.add_trial(optuna.trial.create_trial(
                state=TrialState[t["state"]], params=t["params"], value=t["value"],
                distributions={name: self.dists[name] for name in t["params"]},
            ))
        self.study.sampler._rng.rng.set_state(saved["rng"])
        self.study.sampler._random_sampler._rng.rng.set_state(saved["random_rng"])
