"""Progress bars: studies of a comparison, or trials of a study, with the best result so far."""

from __future__ import annotations

from typing import Any

from ray import tune
from tqdm.auto import tqdm


class _Bar(tune.Callback):
    """A Tune callback driving one tqdm bar that advances once per finished (or errored) trial."""

    def __init__(self, total: int, desc: str, unit: str, enabled: bool = True):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.done: set[str] = set()
        self.bar = None

    def _bar(self):
        if self.bar is None and self.enabled:
            self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, dynamic_ncols=True)
        return self.bar

    def on_trial_complete(self, iteration: int, trials: list, trial, **info):
        self._finish(trial)

    def on_trial_error(self, iteration: int, trials: list, trial, **info):
        self._finish(trial)

    def _finish(self, trial) -> None:
        if trial.trial_id in self.done:
            return
        self.done.add(trial.trial_id)
        bar = self._bar()
        if bar is not None:
            bar.update(1)

    def _postfix(self, values: dict[str, str]) -> None:
        bar = self._bar()
        if bar is not None and values:
            bar.set_postfix(values, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class StudyProgress(_Bar):
    """One bar over the studies of an experiment (each a Tune trial), best so far per method."""

    def __init__(self, total: int, enabled: bool = True):
        super().__init__(total, "studies", "study", enabled)
        self.best: dict[str, float] = {}

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict[str, Any], **info):
        method, best = result.get("method"), result.get("best")
        if method is not None and best is not None:
            prev = self.best.get(method)
            # The bar shows the mean-free "best of any seed so far" per method.
            self.best[method] = best if prev is None else max(prev, best)
        if result.get("done"):
            self._finish(trial)
        self._bar()
        self._postfix({m: f"{v:.2f}" for m, v in sorted(self.best.items())})


class TrialProgress(_Bar):
    """One bar over the trials of a study (one Tune trial per query), with the best ``metric`` so far."""

    def __init__(self, total: int, desc: str, metric: str, mode: str = "max", enabled: bool = True):
        super().__init__(total, desc, "trial", enabled)
        self.metric, self.mode = metric, mode
        self.best: float | None = None

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict[str, Any], **info):
        value = result.get(self.metric)
        if value is not None and (
            self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        ):
            self.best = value
        self._bar()
        if self.best is not None:
            self._postfix({f"best {self.metric}": f"{self.best:.2f}"})
