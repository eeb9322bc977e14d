"""One conformance suite over every baseline searcher (the neural ones have their own files)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from ray.tune.search import Searcher

from raynas import UnknownNameError
from raynas.benchmarks._import import import_table
from raynas.runner import simulate
from raynas.runner._study import BenchmarkCost
from raynas.searchers import get_searcher, searcher_options

BASELINES = ["random", "evolution", "reinforce", "tpe", "local"]


def make(name, bench, seed=0, **kw):
    return get_searcher(name, bench.space, metric="test_accuracy", mode="max", seed=seed, **kw)


def configs(state):
    return [r["config"] for r in state.rows]


@pytest.mark.parametrize("name", BASELINES)
def test_same_seed_same_sequence(name, nb201):
    a = simulate(make(name, nb201, seed=3), nb201, 40, workers=2)
    b = simulate(make(name, nb201, seed=3), nb201, 40, workers=2)
    c = simulate(make(name, nb201, seed=4), nb201, 40, workers=2)
    assert configs(a) == configs(b)
    assert configs(a) != configs(c)


@pytest.mark.parametrize("name", BASELINES)
def test_pickles_mid_run_and_continues_identically(name, nb201):
    s = make(name, nb201, seed=1)
    st = simulate(s, nb201, 60, workers=3, stop_after=25)
    clone, st_clone = pickle.loads(pickle.dumps(s)), copy.deepcopy(st)
    full = simulate(s, nb201, 60, workers=3, state=st)
    again = simulate(clone, nb201, 60, workers=3, state=st_clone)
    assert configs(full) == configs(again)


@pytest.mark.parametrize("name", BASELINES)
def test_save_restore_with_trials_in_flight(name, nb201, tmp_path):
    ref = simulate(make(name, nb201, seed=2), nb201, 50, workers=4)
    s = make(name, nb201, seed=2)
    st = simulate(s, nb201, 50, workers=4, stop_after=20)
    assert len(s.live) == 3  # trials still running when the state is saved
    s.save(str(tmp_path / "searcher.pkl"))
    fresh = make(name, nb201, seed=99)  # the seed must come back from the file
    fresh.restore(str(tmp_path / "searcher.pkl"))
    assert fresh.live == s.live and fresh.metric == "test_accuracy"
    rest = simulate(fresh, nb201, 50, workers=4, state=copy.deepcopy(st))
    assert configs(rest) == configs(ref)


@pytest.mark.parametrize("name", BASELINES)
def test_never_proposes_a_cell_twice(name, macro):
    st = simulate(make(name, macro, seed=0), macro, 150, workers=3)
    keys = [r["key"] for r in st.rows]
    assert len(keys) == 150 and len(set(keys)) == 150


@pytest.mark.parametrize("name", BASELINES)
def test_errored_trials_are_recorded_and_search_goes_on(name, nb201):
    s = make(name, nb201, seed=0)
    configs_ = [s.suggest(f"t{i}") for i in range(3)]
    s.on_trial_complete("t0", None, error=True)
    s.on_trial_complete("t1", {"test_accuracy": 90.0})
    s.on_trial_complete("t2", {"other": 1.0})  # no metric: treated as a failure
    nxt = s.suggest("t3")
    assert isinstance(nxt, dict) and nxt not in configs_
    assert [h["error"] for h in s.history] == [True, False, True]


@pytest.mark.parametrize("name", BASELINES)
def test_partial_table_keeps_to_candidates_then_finishes(name, nb201, tmp_path):
    space = nb201.space
    rng = np.random.default_rng(0)
    cells = {}
    while len(cells) < 30:
        a = space.sample(rng)
        cells.setdefault(space.key(a), a)
    csv = tmp_path / "part.csv"
    csv.write_text("arch,acc\n" + "".join(f"{space.to_string(a)},{i}\n" for i, a in enumerate(cells.values())))
    bench = import_table(csv, "nasbench201", "arch", {"test_accuracy": "acc"})
    s = make(name, bench, seed=0, candidates=bench.candidates())
    st = simulate(s, bench, 40, workers=2)
    assert len(st.rows) == 30 and all(r["error"] is None for r in st.rows)
    assert {r["key"] for r in st.rows} == set(cells)
    assert s.suggest("extra") == Searcher.FINISHED


@pytest.mark.parametrize("name", BASELINES)
def test_flops_limit_holds(name, macro):
    limit = 2.5e7
    s = make(name, macro, seed=0, cost_fn=BenchmarkCost(macro, ["flops"]), max_cost={"flops": limit})
    st = simulate(s, macro, 80, workers=2)
    assert max(r["flops"] for r in st.rows) <= limit


def test_results_are_fed_in_suggestion_order(nb201):
    s = make("evolution", nb201)
    for i in range(4):
        s.suggest(f"t{i}")
    for i in (3, 1, 0, 2):  # arrive out of order
        s.on_trial_complete(f"t{i}", {"test_accuracy": float(i)})
    s.suggest("t4")
    assert [h["index"] for h in s.history] == [0, 1, 2, 3]


def test_unknown_method_and_option():
    with pytest.raises(UnknownNameError, match="evolution"):
        get_searcher("evolutoin", "nasbench201")
    with pytest.raises(UnknownNameError, match="population_size"):
        get_searcher("evolution", "nasbench201", populaton_size=3)


def test_options_list_paper_defaults():
    assert searcher_options("evolution") == {"population_size": 10, "sample_size": 3}
    assert searcher_options("tpe")["n_startup_trials"] == 10


@pytest.mark.slow
def test_quality_evolution_and_tpe_beat_random(nb201):
    def mean_best(name):
        bests = []
        for seed in range(20):
            st = simulate(make(name, nb201, seed=seed), nb201, 100)
            bests.append(max(r["test_accuracy"] for r in st.rows))
        return float(np.mean(bests))

    rnd, evo, tpe = mean_best("random"), mean_best("evolution"), mean_best("tpe")
    assert evo > rnd + 0.1
    assert tpe > rnd + 0.1
