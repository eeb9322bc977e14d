"""A progress bar for comparisons: studies done out of total, best so far per method."""

from __future__ import annotations

from typing import Any

from ray import tune
from tqdm.auto import tqdm


class StudyProgress(tune.Callback):
    """Tune callback driving one tqdm bar over the studies of an experiment."""

    def __init__(self, total: int, enabled: bool = True):
        self.total = total
        self.enabled = enabled
        self.best: dict[str, float] = {}
        self.done: set[str] = set()
        self.bar = None

    def _bar(self):
        if self.bar is None and self.enabled:
            self.bar = tqdm(total=self.total, desc="studies", unit="study", dynamic_ncols=True)
        return self.bar

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict[str, Any], **info):
        method, best = result.get("method"), result.get("best")
        if method is not None and best is not None:
            prev = self.best.get(method)
            # The bar shows the mean-free "best of any seed so far" per method.
            self.best[method] = best if prev is None else max(prev, best)
        if result.get("done"):
            self._finish(trial)
        bar = self._bar()
        if bar is not None:
            bar.set_postfix({m: f"{v:.2f}" for m, v in sorted(self.best.items())}, refresh=False)

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

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class TrialProgress(tune.Callback):
    """Tune callback driving one tqdm bar over the trials of a study, with the best result so far."""

    def __init__(self, total: int, desc: str, metric: str, mode: str = "max", enabled: bool = True):
        self.total, self.desc, self.metric, self.mode, self.enabled = total, desc, metric, mode, enabled
        self.best: float | None = None
        self.done: set[str] = set()
        self.bar = None

    def _bar(self):
        if self.bar is None and self.enabled:
            self.bar = tqdm(total=self.total, desc=self.desc, unit="trial", dynamic_ncols=True)
        return self.bar

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict[str, Any], **info):
        value = result.get(self.metric)
        if value is not None and (
            self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        ):
            self.best = value
        bar = self._bar()
        if bar is not None and self.best is not None:
            bar.set_postfix({f"best {self.metric}": f"{self.best:.2f}"}, refresh=False)

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

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
