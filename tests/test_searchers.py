"""The searcher registry, settings and contract details the conformance suite does not cover.

Determinism, checkpoints, duplicates, limits, failures and the two execution paths are checked
for every searcher in ``test_conformance.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from raynas import UnknownNameError
from raynas.runner import simulate
from raynas.searchers import (
    BASE_OPTIONS,
    ArchSearcher,
    OptionError,
    get_searcher,
    register_searcher,
    searcher_class,
    searcher_names,
    searcher_option_types,
    searcher_options,
)
from raynas.searchers.dnas import DNASConfig


def make(name, bench, seed=0, **kw):
    return get_searcher(name, bench.space, metric="val_accuracy", mode="max", seed=seed, **kw)


def test_results_are_fed_in_suggestion_order(graph):
    s = make("evolution", graph)
    for i in range(4):
        s.suggest(f"t{i}")
    for i in (3, 1, 0, 2):  # arrive out of order
        s.on_trial_complete(f"t{i}", {"val_accuracy": float(i)})
    s.suggest("t4")
    assert [h["index"] for h in s.history] == [0, 1, 2, 3]


def test_unknown_method_and_option():
    with pytest.raises(UnknownNameError, match="evolution"):
        get_searcher("evolutoin", "nasbench201")
    with pytest.raises(UnknownNameError, match="valid options of evolution: population_size, sample_size"):
        get_searcher("evolution", "nasbench201", populaton_size=3)


@pytest.mark.parametrize(
    "method,options,match",
    [
        ("dnas", {"eps_dense": "lots"}, "option eps_dense of dnas must be of type float, got 'lots'"),
        ("dnas", {"top_k": 1.5}, "option top_k of dnas must be of type int"),
        ("dnas", {"dense_sampling": 1}, "option dense_sampling of dnas must be of type bool"),
        ("dnas", {"eps_dense": 0.8, "eps_edge": 0.5}, "eps_dense \\+ eps_edge must be <= 1"),
        ("dnas", {"device": "gpu0"}, "device must be 'auto', 'cpu', 'cuda'"),
        ("nao", {"n_initial": 0}, "n_initial must be >= 1"),
        ("evolution", {"sample_size": 20}, "need 1 <= sample_size <= population_size"),
        ("tpe", {"multivariate": "yes"}, "must be of type bool"),
        ("reinforce", {"baseline_decay": 1.0}, "baseline_decay must be in"),
        ("local", {"num_init": 0}, "num_init must be >= 1"),
    ],
)
def test_bad_option_values_are_refused_before_anything_runs(method, options, match):
    with pytest.raises(OptionError, match=match):
        get_searcher(method, "nasbench201", metric="val_accuracy", mode="max", **options)


def test_an_explicit_option_overrides_config_even_when_it_equals_the_default():
    # The old keyword-merging rule dropped an explicit keyword equal to its default.
    s = get_searcher("dnas", "nasbench201", metric="val_accuracy", mode="max",
                     config=DNASConfig(top_k=5, sigma=0.5), sigma=0.2)
    assert (s.config.top_k, s.config.sigma) == (5, 0.2)
    assert searcher_options("dnas")["sigma"] == 0.2  # the explicit value is the default
    s = get_searcher("seminas", "nasbench201", n_unlabeled=0)
    assert s.config.n_unlabeled == 0 and s.config.pretrain_epochs == 50  # SemiNAS's own default


def test_ints_widen_to_float_options():
    s = get_searcher("dnas", "nasbench201", eps_dense=1, eps_edge=0)
    assert isinstance(s.config.eps_dense, float) and s.config.eps_dense == 1.0


@pytest.mark.parametrize("name", searcher_names())
def test_every_searcher_has_one_constructor_and_a_typed_config(name):
    cls = searcher_class(name)
    assert issubclass(cls, ArchSearcher) and cls.name == name
    assert dataclasses.is_dataclass(cls.config_class)
    defaults = searcher_options(name)
    assert set(searcher_option_types(name)) == set(defaults)
    assert not set(defaults) & set(BASE_OPTIONS)
    s = cls("nasbench201", config=cls.config_class(), metric="val_accuracy", mode="max", seed=3)
    assert dataclasses.asdict(s.config) == defaults and s.seed == 3
    with pytest.raises(TypeError):  # base options are keyword-only
        cls("nasbench201", cls.config_class(), "val_accuracy")
    assert s.get_state()["config"] == defaults


def test_searchers_say_whether_they_want_a_gpu():
    wants = {name for name in searcher_names() if searcher_class(name).wants_gpu}
    assert wants == {"dnas", "nao", "seminas"}


def test_options_list_paper_defaults():
    assert searcher_options("evolution") == {"population_size": 10, "sample_size": 3}
    assert searcher_options("tpe")["n_startup_trials"] == 10
    assert searcher_options("random") == {}
    assert searcher_option_types("dnas")["latent_size"] == "int or null"


def test_register_a_searcher_of_your_own(graph):
    @dataclasses.dataclass(frozen=True)
    class FirstConfig:
        stride: int = 7

    class First(ArchSearcher):
        """Walks the table's candidates with a fixed stride (a toy for the registry test)."""

        name = "first"
        config_class = FirstConfig

        def _propose(self):
            return graph.candidates()[(self.n_suggested * self.config.stride) % len(graph)]

    register_searcher("first", First, "walks the table")
    try:
        assert "first" in searcher_names()
        s = get_searcher("first", graph.space, metric="val_accuracy", mode="max", stride=3)
        rows = simulate(s, graph, 5).rows
        assert [r["key"] for r in rows] == [graph.keys[3 * i] for i in range(5)]
        with pytest.raises(TypeError, match="not an ArchSearcher"):
            register_searcher("bad", dict)
    finally:
        from raynas.searchers import _CLASSES, _REGISTRY

        _REGISTRY.pop("first", None)
        _CLASSES.pop("first", None)


@pytest.mark.slow
def test_quality_evolution_and_tpe_beat_random(graph):
    # On Graph the top of validation accuracy is flat (TPE and random end within 0.05 points
    # at 100 queries), so this sanity check searches test accuracy, where the 20-seed means
    # were 81.35 (random), 81.85 (evolution) and 81.71 (TPE), standard errors about 0.1.
    def mean_best(name):
        bests = []
        for seed in range(20):
            s = get_searcher(name, graph.space, metric="test_accuracy", mode="max", seed=seed)
            bests.append(max(r["test_accuracy"] for r in simulate(s, graph, 100).rows))
        return float(np.mean(bests))

    rnd, evo, tpe = mean_best("random"), mean_best("evolution"), mean_best("tpe")
    assert evo > rnd + 0.2
    assert tpe > rnd + 0.2


# ---------------------------------------------------------------------- partial tables
def _sparse(graph, n=800, seed=3):
    rows = np.random.default_rng(seed).choice(len(graph), size=n, replace=False)
    return graph.subset(sorted(int(r) for r in rows), name="custom")


def test_a_tables_own_keys_spare_hashing_every_candidate(graph, monkeypatch):
    part = _sparse(graph)
    calls = []
    key = type(part.space).key
    monkeypatch.setattr(type(part.space), "key", lambda sp, a: calls.append(1) or key(sp, a))
    make("random", part, candidates=part.candidates())
    assert len(calls) == len(part)
    calls.clear()
    s = make("random", part, candidates=dict(zip(part.keys, part.candidates())))
    assert calls == [] and s.candidates == part.candidates()
    assert {s.space.key(a) for a in s.candidates} == set(part.keys)


def test_nearest_candidate_is_the_closest_unproposed_tabulated_cell(graph):
    part = _sparse(graph)
    s = make("random", part, candidates=part.candidates())
    tokens = np.array([s.tokens_of(a) for a in part.candidates()])
    outside = next(a for a in graph.candidates()[::97] if not part.contains(a))
    target = np.array(s.tokens_of(outside))
    dist = (tokens != target).sum(axis=1)
    got = s.nearest_candidate(target)
    assert (np.array(s.tokens_of(got)) != target).sum() == dist.min()
    s.seen.update(part.keys[i] for i in np.flatnonzero(dist == dist.min()))  # every nearest one proposed
    second = s.nearest_candidate(target)
    assert (np.array(s.tokens_of(second)) != target).sum() == np.sort(np.unique(dist))[1]
    excluded = s.space.key(second)
    third = s.nearest_candidate(target, exclude={excluded})
    assert s.space.key(third) != excluded


def test_reinforce_samples_its_policy_conditioned_on_the_table(graph):
    part = _sparse(graph, n=40)
    s = make("reinforce", part, candidates=part.candidates())
    s.logits = np.random.default_rng(0).normal(scale=2.0, size=s.logits.shape)
    probs = s._probs()
    tokens = np.array([s.tokens_of(a) for a in part.candidates()])
    exact = np.prod(probs[np.arange(probs.shape[0]), tokens], axis=1)
    exact /= exact.sum()
    n = 4000
    keys = [s.space.key(s._propose_in_table(probs)) for _ in range(n)]
    freq = np.array([keys.count(k) for k in part.keys]) / n
    assert np.abs(freq - exact).max() < 0.03
    assert np.corrcoef(freq, exact)[0, 1] > 0.98


def test_evolution_on_a_partial_table_takes_the_nearest_cell_after_bounded_mutations(graph, monkeypatch):
    from raynas.searchers._evolution import MUTATION_TRIES

    part = _sparse(graph, n=200)
    s = make("evolution", part, candidates=part.candidates(), population_size=4, sample_size=2)
    for i in range(4):  # fill the population
        s.suggest(f"t{i}")
        s.on_trial_complete(f"t{i}", {"val_accuracy": float(i)})
    s._flush()
    tries = []
    monkeypatch.setattr(type(part.space), "mutate", lambda sp, arch, rng: tries.append(arch) or arch)  # never new
    child = s._propose()
    assert len(tries) == MUTATION_TRIES and len(set(tries)) == 1  # one parent, mutated MUTATION_TRIES times
    parent = np.array(s.tokens_of(tries[0], full=True))
    dist = lambda a: (np.array(s.tokens_of(a, full=True)) != parent).sum()  # noqa: E731
    open_cells = [a for a in part.candidates() if s.allowed(a)]
    assert s.allowed(child) and dist(child) == min(dist(a) for a in open_cells)
