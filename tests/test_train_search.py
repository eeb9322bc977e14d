"""Searching by training: a raynas searcher in a plain Ray Tune experiment, and `raynas run --trainable train`."""

from __future__ import annotations

import sys

import pytest
from ray import tune

from raynas.searchers import get_searcher
from raynas.spaces import get_space
from raynas.trainables.data import load_dataset
from raynas.trainables.networks import build_network
from raynas.trainables.train import TrainConfig, seeded_init, train_model

# A small NAS-Bench-201 network (the paper's C=16, N=5 is too slow for a test) on digits at 16x16:
# two epochs take about two seconds a cell on one CPU and reach well above chance.
SMALL_NB201 = {"channels": 8, "cells_per_stage": 1}
IMAGE_SIZE = 16
CHANCE = 10.0


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0, image_size=IMAGE_SIZE, channels=3)


def user_trainable(config: dict, splits) -> None:
    """What a Ray Tune user writes: config -> architecture -> network -> train, report per epoch."""
    space = get_space("nasbench201")
    arch = space.from_config(config)
    model = seeded_init(lambda: build_network(space, arch, num_classes=10, **SMALL_NB201), seed=0)

    def report(metrics, _state) -> None:
        tune.report({"val_accuracy": metrics["val_accuracy"], "key": space.key(arch)})

    train_model(model, splits, TrainConfig(epochs=2, batch_size=32, lr=0.05, device="cpu"), seed=0,
                on_epoch=report)


def test_searcher_in_a_plain_tune_experiment(ray_session, digits, tmp_path):
    import ray.cloudpickle
    from ray.tune.schedulers import ASHAScheduler

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    space = get_space("nasbench201")
    searcher = get_searcher("evolution", space, metric="val_accuracy", mode="max", seed=0)
    last: dict[str, dict] = {}  # trial id -> last result

    class LastResult(tune.Callback):  # runs in the driver; no result files are written in tests
        def on_trial_result(self, iteration, trials, trial, result, **info):
            last[trial.trial_id] = dict(result)

    tuner = tune.Tuner(
        tune.with_parameters(user_trainable, splits=digits),
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=ASHAScheduler(max_t=2, grace_period=1), num_samples=4,
            metric="val_accuracy", mode="max",  # the scheduler reads them here, not from the searcher
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="user", verbose=0,
                                  callbacks=[LastResult()]),
    )
    grid = tuner.fit()

    assert len(grid) == 4 and not grid.errors
    keys = {r["key"] for r in last.values()}
    assert len(last) == 4 and len(keys) == 4  # four distinct cells were trained
    assert all(r["val_accuracy"] > 2 * CHANCE for r in last.values()), last
    assert {r["training_iteration"] for r in last.values()} <= {1, 2}
    # The searcher saw every trial, those ASHA stopped after one epoch included. Results that
    # arrive after the last suggestion wait in ``pending`` (fed to the strategy, in suggestion
    # order, at the next ``suggest``), so after ``fit`` the record is ``history`` plus ``pending``.
    seen = searcher.history + [{"key": space.key(arch), "result": result, "error": error}
                               for _, arch, result, error in searcher.pending]
    assert sorted(h["key"] for h in seen) == sorted(keys)
    assert not any(h["error"] for h in seen)
    by_key = {r["key"]: r["val_accuracy"] for r in last.values()}
    assert all(h["result"]["val_accuracy"] == by_key[h["key"]] for h in seen)


# ---------------------------------------------------------------------------- raynas run --trainable train
def _cli(*args: str):
    from click.testing import CliRunner

    from raynas.cli import main

    return CliRunner().invoke(main, ["run", *args])


def test_run_trainable_train_end_to_end(ray_session, tmp_path):
    import json

    import pandas as pd

    out = tmp_path / "train"
    network = [f"--network={k}={v}" for k, v in SMALL_NB201.items()]
    res = _cli("--trainable", "train", "--space", "nasbench201", "--dataset", "digits", "--method", "random",
               "--budget", "4", "--epochs", "1", "--batch-size", "32", "--lr", "0.05", "--workers", "2",
               "--image-size", str(IMAGE_SIZE), *network, "--out", str(out))
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(out / "results.parquet")
    assert len(df) == 4 and df["key"].nunique() == 4 and df["error"].isna().all()
    assert (df["val_accuracy"] > 2 * CHANCE).all() and df["test_accuracy"].notna().all()
    assert df["train_loss"].notna().all() and (df["images_per_s"] > 0).all()
    assert list(df["query"]) == [0, 1, 2, 3] and (df["incumbent"] == df["val_accuracy"].cummax()).all()
    assert set(df["method"]) == {"random"} and (df["time"] >= 0).all()
    space = get_space("nasbench201")
    assert [space.key(space.from_config(json.loads(c))) for c in df["config"]] == list(df["key"])
    saved = json.loads((out / "experiment.json").read_text())
    assert saved["kind"] == "train-run" and saved["network"] == SMALL_NB201 and saved["epochs"] == 1


@pytest.mark.parametrize("args, message", [
    (["--space", "nasbench_graph"], "cannot build a network for space 'nasbench_graph'"),
    (["--space", "nope"], "unknown space 'nope'"),
    (["--space", "nasbench201", "--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["--space", "nasbench201", "--epochs", "0"], "epochs must be a positive number"),
    (["--space", "nasbench201", "--method", "nope"], "unknown method 'nope'"),
    (["--space", "nasbench201", "--network", "width=3"], "bad network options"),
    (["--space", "nasbench201", "--dataset", "cifar10"], "needs --data"),
])
def test_run_trainable_train_rejects_bad_input_before_writing(tmp_path, args, message):
    out = tmp_path / "bad"
    res = _cli("--trainable", "train", "--method", "random", *args, "--out", str(out))
    assert res.exit_code == 2 and message in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not out.exists()


def test_run_trainable_train_records_a_diverging_trial_and_goes_on(ray_session, tmp_path):
    import pandas as pd

    from raynas.runner._train_run import TrainRunConfig, run_train

    cfg = TrainRunConfig(space="nasbench201", methods=["evolution"], budget=2, epochs=1, batch_size=64, lr=1e12,
                         image_size=8, network={"channels": 4, "cells_per_stage": 1})
    df = pd.read_parquet(run_train(cfg, tmp_path / "nan"))
    assert len(df) == 2 and df["val_accuracy"].isna().all() and df["incumbent"].isna().all()
    assert df["error"].str.contains("TrainingDivergedError|training diverged").all(), list(df["error"])
