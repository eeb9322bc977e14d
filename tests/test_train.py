"""Training loop and Tune trainable: learns digits, seeded, checkpoint-exact, fails loudly, runs in Tune."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from raynas._errors import RaynasError
from raynas.trainables.data import load_dataset
from raynas.trainables.train import (
    TIMING_KEYS,
    TrainConfig,
    TrainingDivergedError,
    load_checkpoint,
    save_checkpoint,
    seeded_init,
    train_model,
    train_trainable,
)

FAST = TrainConfig(epochs=4, batch_size=128, lr=0.1, device="cpu")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def small_cnn(width: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),  # (B, W, 8, 8)
        nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Flatten(), nn.Linear(width * 64, 10),
    )


def mlp(width: int = 32) -> nn.Module:
    """Dropout and BatchNorm buffers exercise the private RNG and the checkpointed state."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(width, 10),
    )


def seeded_curve(curve: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in m.items() if k not in TIMING_KEYS} for m in curve]


def test_small_cnn_learns_digits(digits):
    config = TrainConfig(epochs=2, batch_size=128, lr=0.1, device="cpu")
    result = train_model(seeded_init(small_cnn, 0), digits, config, seed=0)
    first, last = result.curve
    assert first["epoch"] == 1 and last["epoch"] == 2
    assert first["val_accuracy"] > 30 and last["val_accuracy"] > 50  # chance is 10%
    assert "test_accuracy" not in first and last["test_accuracy"] == result.test_accuracy
    assert last["lr"] < first["lr"] == 0.1  # cosine
    assert all(m["epoch_time"] > 0 and m["images_per_s"] > 0 for m in result.curve)


def test_same_seed_same_curve_and_global_rng_untouched(digits):
    cpu_state = torch.random.get_rng_state()
    runs = [train_model(seeded_init(mlp, 5), digits, FAST, seed=5) for _ in range(2)]
    other = train_model(seeded_init(mlp, 6), digits, FAST, seed=6)
    assert torch.equal(torch.random.get_rng_state(), cpu_state)
    assert seeded_curve(runs[0].curve) == seeded_curve(runs[1].curve)
    assert seeded_curve(runs[0].curve) != seeded_curve(other.curve)


def test_seeded_init_is_repeatable_and_leaves_global_rng():
    before = torch.random.get_rng_state()
    a, b = seeded_init(mlp, 1), seeded_init(mlp, 1)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_resume_from_checkpoint_equals_uninterrupted_run(digits, tmp_path):
    path = tmp_path / "state.pt"

    def keep_epoch_2(metrics, state):
        if metrics["epoch"] == 2:
            save_checkpoint(state, path)

    full = train_model(seeded_init(mlp, 3), digits, FAST, seed=3, on_epoch=keep_epoch_2)
    state = load_checkpoint(path)  # weights_only=True: plain tensors and values
    assert state["epoch"] == 2 and len(state["curve"]) == 2
    fresh = seeded_init(mlp, 99)  # its weights are replaced by the checkpoint's
    resumed = train_model(fresh, digits, FAST, seed=3, state=state)
    assert seeded_curve(resumed.curve) == seeded_curve(full.curve)
    assert resumed.test_accuracy == full.test_accuracy
    with pytest.raises(ValueError, match="start_epoch"):
        train_model(seeded_init(mlp, 3), digits, FAST, seed=3, start_epoch=1, state=state)


class NanModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)) * math.nan


def test_nan_loss_raises_training_diverged(digits):
    with pytest.raises(TrainingDivergedError, match="diverged: loss is nan at step 0 of epoch 1") as info:
        train_model(NanModel(), digits, FAST, seed=0)
    assert isinstance(info.value, RaynasError)


def test_config_is_validated():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.0)


# ---------------------------------------------------------------------------- Ray Tune


class FlakyMLP(nn.Module):
    """An MLP whose first life raises at the first training step of epoch ``fail_at`` (a crashed worker)."""

    def __init__(self, fail_at: int, steps_per_epoch: int, marker: Path) -> None:
        super().__init__()
        self.net, self.calls = mlp(), 0
        self.limit, self.marker = (fail_at - 1) * steps_per_epoch, marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            if self.calls == self.limit and self.limit > 0 and not self.marker.exists():
                self.marker.touch()
                raise RuntimeError("simulated worker crash")
            self.calls += 1
        return self.net(x)


def tune_model_fn(config: dict) -> nn.Module:
    if config["width"] < 0:
        raise ValueError("negative width")
    return FlakyMLP(config.get("fail_at", 0), config.get("steps", 1), Path(config.get("marker", "/nonexistent")))


def _fit(tmp_path: Path, param_space: dict, digits, max_failures: int = 0):
    """Run a Tuner; returns the results and each trial's reported curve keyed by (width, fail_at)."""
    import ray.cloudpickle
    from ray import tune

    curves: dict[tuple[int, int], list[dict]] = {}

    class Curves(tune.Callback):  # runs in the driver; no result files are written in tests
        def on_trial_result(self, iteration, trials, trial, result, **info):
            key = (trial.config["width"], trial.config.get("fail_at", 0))
            curves.setdefault(key, []).append(dict(result))

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    trainable = tune.with_parameters(
        train_trainable, model_fn=tune_model_fn, data_ref_or_splits=digits, train_config=FAST
    )
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        run_config=tune.RunConfig(
            storage_path=str(tmp_path), name="train", verbose=0,
            failure_config=tune.FailureConfig(max_failures=max_failures), callbacks=[Curves()],
        ),
    )
    return tuner.fit(), curves


def test_tune_trainable_reports_every_epoch_and_survives_an_errored_trial(ray_session, digits, tmp_path):
    from ray import tune

    results, curves = _fit(tmp_path, {"width": tune.grid_search([32, -1])}, digits)
    assert len(results) == 2 and len(results.errors) == 1
    assert "negative width" in str(results.errors[0])
    good = next(r for r in results if r.error is None)
    curve = curves[good.config["width"], 0]
    assert [m["epoch"] for m in curve] == [1, 2, 3, 4]
    assert all("val_accuracy" in m for m in curve) and curve[-1]["val_accuracy"] > 50
    assert good.checkpoint is not None and "test_accuracy" in good.metrics


def test_tune_trainable_resumes_with_the_uninterrupted_curve(ray_session, digits, tmp_path):
    from ray import tune

    steps = math.ceil(len(digits.train) / FAST.batch_size)
    marker = tmp_path / "crashed-once"
    space = {"width": 32, "steps": steps, "marker": str(marker), "fail_at": tune.grid_search([0, 3])}
    results, curves = _fit(tmp_path, space, digits, max_failures=1)
    assert marker.exists() and not results.errors
    keys = ["epoch", "lr", "train_loss", "train_accuracy", "val_accuracy", "test_accuracy"]
    resumed, uninterrupted = curves[32, 3], curves[32, 0]
    assert [m["epoch"] for m in resumed] == [1, 2, 3, 4]  # epochs 1-2, crash, 3-4 from the checkpoint
    assert [[m.get(k) for k in keys] for m in resumed] == [[m.get(k) for k in keys] for m in uninterrupted]
    assert resumed[-1]["test_accuracy"] is not None


def test_mixed_precision_and_channels_last_paths_run_on_cpu(digits):
    config = TrainConfig(epochs=1, batch_size=256, lr=0.1, device="cpu", amp=True, channels_last=True, grad_clip=5.0)
    result = train_model(seeded_init(small_cnn, 0), digits, config, seed=0)
    assert math.isfinite(result.curve[0]["train_loss"]) and result.test_accuracy is not None
