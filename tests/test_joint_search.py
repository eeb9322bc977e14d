"""Joint architecture + hyperparameter search: the text form of a space, JointSearcher, and the CLI."""

from __future__ import annotations

import json

import pytest

from raynas.runner._hparams import HparamSyntaxError, extremes, parse_hparams, to_domains
from raynas.searchers import JointSearcher, get_searcher
from raynas.spaces import get_space

HPARAMS = "lr=loguniform(1e-3,0.2),weight_decay=loguniform(1e-5,1e-3),batch_size=choice(64,128)"


# ---------------------------------------------------------------------------- the text form
def test_parse_hparams_reads_the_issue_example_and_makes_tune_domains():
    spec = parse_hparams(HPARAMS)
    assert spec == {"lr": "loguniform(0.001, 0.2)", "weight_decay": "loguniform(1e-05, 0.001)",
                    "batch_size": "choice(64, 128)"}
    domains = to_domains(spec)
    assert domains["lr"].lower == 1e-3 and domains["lr"].upper == 0.2
    assert domains["batch_size"].categories == [64, 128]
    assert extremes(spec) == {"lr": [1e-3, 0.2], "weight_decay": [1e-5, 1e-3], "batch_size": [64, 128]}
    assert extremes(parse_hparams("batch_size=randint(32,65)")) == {"batch_size": [32, 64]}


@pytest.mark.parametrize("text, message", [
    ("", "no hyperparameters given"),
    ("lr=0.1", "must be a function call"),
    ("lr=normal(0,1)", "unknown function 'normal'"),
    ("lr=loguniform(0.2)", "loguniform takes 2 arguments, got 1"),
    ("lr=loguniform(0.2,0.001)", "needs lower < upper"),
    ("lr=loguniform(0,0.1)", "needs a positive lower bound"),
    ("lr=uniform(a,b)", "must be numbers or strings"),
    ("lr=loguniform(1e-3,0.2", "cannot read"),
    ("__import__('os').system('true')", "must be NAME=FUNCTION(ARGS)"),
])
def test_parse_hparams_refuses_bad_text_with_an_example(text, message):
    with pytest.raises(HparamSyntaxError, match="e.g.") as err:
        parse_hparams(text)
    assert message in str(err.value)


# ---------------------------------------------------------------------------- the searcher
def _joint(seed: int = 0, method: str = "evolution") -> JointSearcher:
    arch = get_searcher(method, "nasbench201", metric="val_accuracy", mode="max", seed=seed,
                        **({"population_size": 4, "sample_size": 2} if method == "evolution" else {}))
    return JointSearcher(arch, to_domains(parse_hparams(HPARAMS)), seed=seed)


def _score(config: dict) -> float:
    """A made-up objective that depends on both the cell and the learning rate."""
    cell = sum(op == "nor_conv_3x3" for k, op in config.items() if k.startswith("edge_"))
    return 50.0 + 5.0 * cell - 10.0 * abs(config["hparams"]["lr"] - 0.05)


def _drive(searcher: JointSearcher, start: int, stop: int) -> list[dict]:
    configs = []
    for i in range(start, stop):
        config = searcher.suggest(f"t{i}")
        configs.append(config)
        searcher.on_trial_result(f"t{i}", {"val_accuracy": _score(config) - 1, "training_iteration": 1})
        if i % 5 == 4:
            searcher.on_trial_complete(f"t{i}", None, error=True)
        else:
            searcher.on_trial_complete(f"t{i}", {"val_accuracy": _score(config), "training_iteration": 2})
    return configs


def test_both_searchers_learn_from_every_result():
    searcher = _joint()
    configs = _drive(searcher, 0, 15)
    space = get_space("nasbench201")
    assert all(set(c["hparams"]) == {"lr", "weight_decay", "batch_size"} for c in configs)
    assert all(1e-3 <= c["hparams"]["lr"] <= 0.2 and c["hparams"]["batch_size"] in (64, 128) for c in configs)
    assert len({space.key(space.from_config(c)) for c in configs}) == 15
    searcher.arch._flush()
    history = searcher.arch.history
    assert [h["index"] for h in history] == list(range(15))
    assert [h["error"] for h in history] == [i % 5 == 4 for i in range(15)]
    assert all(h["result"]["val_accuracy"] == _score(configs[h["index"]]) for h in history if not h["error"])
    trials = searcher.hp._ot_study.trials
    assert len(trials) == 15
    assert [t.state.name for t in trials] == ["FAIL" if i % 5 == 4 else "COMPLETE" for i in range(15)]
    assert [t.value for t in trials if t.value is not None] == \
        [_score(c) for i, c in enumerate(configs) if i % 5 != 4]
    assert all(t.params["lr"] == c["hparams"]["lr"] for t, c in zip(trials, configs))
    assert trials[0].intermediate_values == {1: _score(configs[0]) - 1}  # ASHA-style reports reach TPE too


def test_save_and_restore_continue_both_searches_exactly(tmp_path):
    straight = _drive(_joint(), 0, 24)
    first = _joint()
    head = _drive(first, 0, 12)
    first.save(str(tmp_path / "state"))
    second = _joint(seed=99)  # the state, not the constructor, decides
    second.restore(str(tmp_path / "state"))
    tail = _drive(second, 12, 24)
    assert head + tail == straight


def test_joint_searcher_needs_hyperparameters():
    arch = get_searcher("random", "nasbench201", metric="val_accuracy", mode="max")
    with pytest.raises(ValueError, match="give the hyperparameters to search"):
        JointSearcher(arch, {})


# ---------------------------------------------------------------------------- end to end
SMALL_NB201 = ["--network", "channels=4", "--network", "cells_per_stage=1"]


@pytest.mark.slow
def test_compare_trainable_train_with_hparams_and_asha(ray_session, tmp_path):
    import pandas as pd
    from click.testing import CliRunner

    from raynas.cli import main

    out = tmp_path / "joint"
    res = CliRunner().invoke(main, [
        "compare", "--trainable", "train", "--space", "nasbench201", "--dataset", "digits", "--image-size", "8",
        "--methods", "evolution,random", "--seeds", "1", "--budget", "6", "--epochs", "3", "--workers", "2",
        "--batch-size", "64", "--hparams", "lr=loguniform(1e-2,0.2),batch_size=choice(32,64)",
        "--scheduler", "asha", *SMALL_NB201, "--set", "evolution.population_size=3",
        "--set", "evolution.sample_size=2", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(out / "results.parquet")
    assert list(df.groupby("method").size()) == [6, 6] and df["error"].isna().all()
    hps = [json.loads(c)["hparams"] for c in df["config"]]
    assert all(0.01 <= h["lr"] <= 0.2 and h["batch_size"] in (32, 64) for h in hps)
    lrs = {m: [json.loads(c)["hparams"]["lr"] for c in df.loc[df["method"] == m, "config"]] for m in ("evolution", "random")}
    assert len(set(lrs["evolution"])) == len(set(lrs["random"])) == 6
    # Same seed, same hyperparameter searcher: both methods' studies start from the same TPE draws.
    assert sorted(lrs["evolution"][:4]) == sorted(lrs["random"][:4])
    assert set(df["epoch"]) <= {1.0, 3.0} and (df["epoch"] == 1).any()  # ASHA stopped some at epoch 1
    assert df.loc[df["epoch"] == 3, "test_accuracy"].notna().all()
    assert (out / "summary.md").read_text().count("| evolution |") == 1 and (out / "curves.png").stat().st_size > 0
    # Each study's searcher state holds both searchers, and both saw all six results.
    for method in ("evolution", "random"):
        state_file = sorted((out / "tune" / f"{method}-seed0").glob("searcher-state-*.pkl"))[-1]
        joint = JointSearcher(get_searcher(method, "nasbench201"), to_domains(parse_hparams("lr=uniform(0,1)")))
        joint.restore(str(state_file))
        seen = len(joint.arch.history) + len(joint.arch.pending)
        assert seen == 6, method
        assert sum(t.state.name == "COMPLETE" for t in joint.hp._ot_study.trials) == 6, method


@pytest.mark.parametrize("args, message", [
    (["--hparams", "lr=normal(0,1)"], "unknown function 'normal'"),
    (["--hparams", "epochs=choice(1,2)"], "epochs are the fidelity"),
    (["--hparams", "momentum=uniform(0.5,1.5)"], "momentum must lie in [0, 1)"),
    (["--hparams", "dropout=uniform(0,0.5)"], "cannot tune dropout"),
    (["--hparams", "batch_size=uniform(16,64)"], "batch_size must be a whole number"),
    (["--gpus-per-trial", "lots"], "neither a number nor auto"),
])
def test_bad_joint_search_input_is_refused_before_writing(tmp_path, args, message):
    from click.testing import CliRunner

    from raynas.cli import main

    out = tmp_path / "bad"
    res = CliRunner().invoke(main, ["run", "--trainable", "train", "--space", "nasbench201", "--method", "random",
                                    "--budget", "1", "--epochs", "1", *args, "--out", str(out)])  # fails fast if let through
    assert res.exit_code == 2 and message in res.output, res.output
    assert "Traceback" not in res.output and not out.exists()


def test_gpus_auto_shares_a_gpu_for_small_networks_only():
    from raynas.runner._train_run import resolve_gpus

    assert resolve_gpus("auto", "nasbench201", cluster_gpus=0) == 0.0
    assert resolve_gpus("auto", "nasbench201", cluster_gpus=2) == 0.25
    assert resolve_gpus("auto", "nasbench_macro", cluster_gpus=1) == 0.25
    assert resolve_gpus("auto", "nasbench101", cluster_gpus=1) == 1.0
    assert resolve_gpus("auto", "darts", cluster_gpus=8) == 1.0
    assert resolve_gpus(0.5, "darts", cluster_gpus=0) == 0.5


def test_any_tune_searcher_can_search_the_hyperparameters():
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    arch = get_searcher("random", "nasbench201", metric="val_accuracy", mode="max", seed=0)
    other = OptunaSearch(sampler=optuna.samplers.RandomSampler(seed=1))  # no space yet: the joint searcher sets it
    searcher = JointSearcher(arch, to_domains(parse_hparams("lr=uniform(0.01,0.02)")), hparam_searcher=other)
    configs = _drive(searcher, 0, 6)
    assert searcher.hp is other and all(0.01 <= c["hparams"]["lr"] <= 0.02 for c in configs)
    assert len(other._ot_study.trials) == 6
