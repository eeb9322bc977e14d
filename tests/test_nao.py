"""NAO and SemiNAS: options, determinism, checkpoints and a sanity check of search quality."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from raynas.runner import simulate
from raynas.searchers import get_searcher, searcher_options
from raynas.searchers.nao import NAOController, NAOSearcher, SemiNASSearcher

FAST = dict(
    n_initial=8, batch=4, pretrain_epochs=5, epochs=1, warmup_epochs=1, top_k=20,
    max_step_size=20, train_batch_size=50,
)


def _make(method, space, seed=0, **kw):
    opts = {**FAST, **({"n_unlabeled": 200} if method == "seminas" else {}), **kw}
    return get_searcher(method, space, metric="test_accuracy", mode="max", seed=seed, device="cpu", **opts)


def _configs(state):
    return [r["config"] for r in state.rows]


def test_options_and_defaults():
    nao, semi = searcher_options("nao"), searcher_options("seminas")
    assert nao["n_unlabeled"] == 0 and semi["n_unlabeled"] == 10_000
    for opts in (nao, semi):
        assert (opts["hidden_size"], opts["trade_off"], opts["up_sample"]) == (64, 0.8, 10)
    assert isinstance(_make("nao", "nasbench201"), NAOSearcher)
    assert isinstance(_make("seminas", "nasbench201"), SemiNASSearcher)
    assert isinstance(_make("nao", "nasbench201").model, NAOController)


@pytest.mark.parametrize("method", ["nao", "seminas"])
def test_same_seed_same_study(nb201, method):
    a = simulate(_make(method, nb201.space, seed=5), nb201, 24)
    b = simulate(_make(method, nb201.space, seed=5), nb201, 24)
    c = simulate(_make(method, nb201.space, seed=6), nb201, 24)
    assert _configs(a) == _configs(b) != _configs(c)
    assert len({r["key"] for r in a.rows}) == 24


@pytest.mark.parametrize("method", ["nao", "seminas"])
def test_save_restore_mid_study(nb201, tmp_path, method):
    budget, k = 28, 14
    full = simulate(_make(method, nb201.space, seed=2), nb201, budget, workers=2)
    first = _make(method, nb201.space, seed=2)
    part = simulate(first, nb201, budget, workers=2, stop_after=k)
    first.save(str(tmp_path / "s.pkl"))
    restored = _make(method, nb201.space, seed=42)
    restored.restore(str(tmp_path / "s.pkl"))
    rest = simulate(restored, nb201, budget, workers=2, state=copy.deepcopy(part))
    assert _configs(rest) == _configs(full)


@pytest.mark.parametrize("method", ["nao", "seminas"])
def test_pickles_mid_run_never_repeats_and_survives_errors(nb201, method):
    s = _make(method, nb201.space, seed=1)
    st = simulate(s, nb201, 26, workers=3, stop_after=14)
    clone, st_clone = pickle.loads(pickle.dumps(s)), copy.deepcopy(st)
    a = simulate(s, nb201, 26, workers=3, state=st)
    assert _configs(a) == _configs(simulate(clone, nb201, 26, workers=3, state=st_clone))
    assert len({r["key"] for r in a.rows}) == 26
    s = _make(method, nb201.space, n_initial=3)
    first = [s.suggest(f"t{i}") for i in range(3)]
    s.on_trial_complete("t0", None, error=True)
    s.on_trial_complete("t1", {"test_accuracy": 90.0})
    s.on_trial_complete("t2", {"test_accuracy": 91.0})
    assert s.suggest("t3") not in first and s.rounds == 1


def test_global_rng_untouched(nb201):
    torch.manual_seed(1)
    expected = torch.rand(1)
    torch.manual_seed(1)
    simulate(_make("seminas", nb201.space), nb201, 14)
    assert torch.rand(1) == expected


def test_decoding_is_valid_and_new_cells_appear(nb201):
    s = _make("nao", nb201.space, max_step_size=100, pretrain_epochs=100)
    simulate(s, nb201, 20)
    assert s.rounds >= 2 and s.validity_rate == 1.0
    assert s.n_fallbacks <= 3  # nearly every proposal after the initial batch is the controller's


@pytest.mark.parametrize("method", ["nao", "seminas"])
def test_better_than_random_median(nb201, method):
    budget = 60
    random_best = []
    for seed in range(40):
        rnd = get_searcher("random", nb201.space, metric="test_accuracy", mode="max", seed=seed)
        random_best.append(max(r["test_accuracy"] for r in simulate(rnd, nb201, budget).rows))
    median = float(np.median(random_best))
    found = []
    for seed in range(3):
        s = _make(method, nb201.space, seed=seed, pretrain_epochs=30, epochs=2, warmup_epochs=3,
                  n_initial=20, batch=10)
        found.append(max(r["test_accuracy"] for r in simulate(s, nb201, budget).rows))
    assert np.mean(found) > median, (found, median)
