"""One conformance suite for every raynas searcher, yours included.

Every registered strategy runs through :class:`SearcherConformance` in raynas's own tests. To
check a strategy of your own, subclass it in a pytest file and list how to build it::

    from raynas.testing.conformance import SearcherConformance, SearcherFactory

    class TestMySearcher(SearcherConformance):
        factories = [SearcherFactory("mine", cls="my_package.search:MySearcher")]

The suite needs no data file: its full table is NAS-Bench-Graph (Cora), which ships inside its
PyPI package, with validation accuracy as the objective; its partial tables are subsets of it.
For every factory it checks that

* the same seed gives the same sequence, in one process, in another process (with another
  hash seed) and after pickling the searcher mid-run, and no global random generator
  (``random``, ``numpy.random``, ``torch``) is used or reseeded;
* save/restore with trials still in flight continues exactly as the uninterrupted run;
* no cell is ever proposed twice, on the full table and on a partial one, and on a partial
  table only its cells are proposed until the searcher says it has finished;
* on a sparse partial table (1,000 of 26,206 cells) proposals come from the table itself: no
  random cell of the whole space is drawn and none falls back to a random table cell;
* every proposal respects ``max_cost``;
* errored and stopped trials are recorded and the search goes on, also when a third of all
  evaluations fail;
* the simulated backend and the Ray Tune path propose the same cells with one worker.

Options in :data:`FAST_OPTIONS` shrink the neural searchers' training so that a study of a few
dozen queries takes about a second; a new strategy with a costly round adds its own there (or
passes ``options=`` to its factory).
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import pytest
from ray.tune.search import Searcher

from raynas.benchmarks import TabularBenchmark, load
from raynas.runner._simulator import SimState, simulate
from raynas.searchers import ArchSearcher, get_searcher
from raynas.trainables.evaluator import TabularEvaluator

METRIC = "val_accuracy"

#: Per-strategy options that keep conformance studies to about a second each.
FAST_OPTIONS: dict[str, dict[str, Any]] = {
    "dnas": dict(n_unlabeled=200, pretrain_epochs=5, epochs=1, warmup_epochs=2,
                 top_p=4, max_steps=3, n_initial=8, batch=4, train_batch_size=64, device="cpu"),
    "nao": dict(n_initial=8, batch=4, pretrain_epochs=5, epochs=1, warmup_epochs=1, top_k=20,
                max_step_size=20, train_batch_size=50, device="cpu"),
    "seminas": dict(n_initial=8, batch=4, pretrain_epochs=5, epochs=1, warmup_epochs=1, top_k=20,
                    max_step_size=20, train_batch_size=50, device="cpu", n_unlabeled=200),
    # Pretrained once per process on 2,000 cells (cached); the pool is still the whole space.
    "arch2vec-bo": dict(pretrain_size=2000, pretrain_epochs=1, pretrain_latent_points=0, n_initial=8,
                        batch=4, dngo_steps=50),
    "arch2vec-rl": dict(pretrain_size=2000, pretrain_epochs=1, pretrain_latent_points=0, batch=8),
}


@dataclass(frozen=True)
class SearcherFactory:
    """How to build one strategy; picklable, so that another process can build it too.

    Args:
        method: A registered name (``raynas searchers``), or a label when ``cls`` is given.
        options: The strategy's own options (fields of its config), on top of
            :data:`FAST_OPTIONS` for registered names.
        cls: ``"module:Class"`` of an :class:`~raynas.searchers.ArchSearcher` subclass that is
            not registered; it must be importable in a fresh process.
    """

    method: str
    options: dict[str, Any] = field(default_factory=dict)
    cls: str | None = None

    @property
    def id(self) -> str:
        return self.method

    def __call__(self, bench: TabularBenchmark, **base: Any) -> ArchSearcher:
        base.setdefault("metric", METRIC)
        base.setdefault("mode", "max")
        if self.cls is None:
            options = {**FAST_OPTIONS.get(self.method, {}), **self.options}
            return get_searcher(self.method, bench.space, **options, **base)
        import importlib

        from raynas.searchers._config import build_config

        module, _, name = self.cls.partition(":")
        klass = getattr(importlib.import_module(module), name)
        config = build_config(klass.config_class, self.method, dict(self.options))
        return klass(bench.space, config=config, **base)


# ---------------------------------------------------------------------- data and studies
@lru_cache(maxsize=1)
def full_table() -> TabularBenchmark:
    """NAS-Bench-Graph on Cora: 26,206 cells, embedded in the ``nas-bench-graph`` package."""
    return load("nasbench_graph", dataset="cora")


def partial_table(n: int, seed: int = 0) -> TabularBenchmark:
    """``n`` random cells of :func:`full_table`, as a partial table."""
    full = full_table()
    rows = np.random.default_rng(seed).choice(len(full), size=n, replace=False)
    return full.subset(sorted(int(r) for r in rows), name="custom")


def configs(state: SimState) -> list[str]:
    return [r["config"] for r in state.rows]


def study_configs(factory: SearcherFactory, seed: int, budget: int, workers: int) -> list[str]:
    """The configs of one simulated study on the full table, in completion order."""
    return configs(simulate(factory(full_table(), seed=seed), full_table(), budget, workers=workers))


def _tune_configs(searcher: ArchSearcher, bench: TabularBenchmark, budget: int, storage: str) -> list[str]:
    """The configs the searcher proposed in a Ray Tune run with one worker, in suggestion order."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from raynas.trainables.tabular import tabular_trainable

    tuner = tune.Tuner(
        tune.with_parameters(tabular_trainable, bench=bench),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=1), num_samples=budget,
            metric=METRIC, mode="max", reuse_actors=True,
        ),
        run_config=tune.RunConfig(name="conformance", storage_path=storage, verbose=0),
    )
    grid = tuner.fit()
    assert not grid.errors, grid.errors
    proposed = [(h["index"], h["arch"]) for h in searcher.history]
    proposed += [(index, arch) for index, arch, _, _ in searcher.pending]
    return [json.dumps(bench.space.to_config(arch), sort_keys=True) for _, arch in sorted(proposed)]


_CHILD = """
import json, pickle, sys
from raynas.testing.conformance import study_configs
factory, kwargs = pickle.loads(sys.stdin.buffer.read())
print(json.dumps(study_configs(factory, **kwargs)))
"""


class SearcherConformance:
    """The conformance tests; subclass it and set :attr:`factories`."""

    #: The strategies under test.
    factories: ClassVar[list[SearcherFactory]] = []
    budget: ClassVar[int] = 40

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "factory" in metafunc.fixturenames:
            metafunc.parametrize("factory", self.factories, ids=[f.id for f in self.factories])

    @pytest.fixture
    def conformance_ray(self):
        """A running Ray instance for the Tune-path test (override to share your own)."""
        import ray

        started = not ray.is_initialized()
        if started:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        yield ray
        if started:
            ray.shutdown()

    # ------------------------------------------------------------------ determinism
    def test_same_seed_same_sequence(self, factory: SearcherFactory) -> None:
        a = study_configs(factory, seed=3, budget=self.budget, workers=2)
        b = study_configs(factory, seed=3, budget=self.budget, workers=2)
        c = study_configs(factory, seed=4, budget=self.budget, workers=2)
        assert len(a) == self.budget
        assert a == b, "the same seed gave a different sequence"
        assert a != c, "seeds 3 and 4 gave the same sequence: is the seed used?"

    def test_same_sequence_in_another_process(self, factory: SearcherFactory) -> None:
        kwargs = dict(seed=5, budget=self.budget // 2, workers=2)
        here = study_configs(factory, **kwargs)
        env = {**os.environ, "PYTHONHASHSEED": str(12345 if os.environ.get("PYTHONHASHSEED") != "12345" else 54321)}
        done = subprocess.run([sys.executable, "-c", _CHILD], input=pickle.dumps((factory, kwargs)),
                              capture_output=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        assert json.loads(done.stdout.decode().strip().splitlines()[-1]) == here

    def test_pickled_mid_run_continues_identically(self, factory: SearcherFactory) -> None:
        bench = full_table()
        s = factory(bench, seed=1)
        st = simulate(s, bench, self.budget, workers=3, stop_after=self.budget // 2)
        clone, st_clone = pickle.loads(pickle.dumps(s)), copy.deepcopy(st)
        full = simulate(s, bench, self.budget, workers=3, state=st)
        again = simulate(clone, bench, self.budget, workers=3, state=st_clone)
        assert configs(full) == configs(again)

    def test_save_restore_with_trials_in_flight(self, factory: SearcherFactory, tmp_path) -> None:
        bench = full_table()
        ref = simulate(factory(bench, seed=2), bench, self.budget, workers=4)
        s = factory(bench, seed=2)
        st = simulate(s, bench, self.budget, workers=4, stop_after=self.budget // 2)
        assert len(s.live) == 3, "three trials should still be running when the state is saved"
        s.save(str(tmp_path / "searcher.pt"))
        fresh = factory(bench, seed=99)  # the seed and everything else must come from the file
        fresh.restore(str(tmp_path / "searcher.pt"))
        assert fresh.live == s.live and fresh.metric == METRIC
        rest = simulate(fresh, bench, self.budget, workers=4, state=copy.deepcopy(st))
        assert configs(rest) == configs(ref)

    def test_global_random_state_untouched(self, factory: SearcherFactory) -> None:
        import random

        import torch

        def draw() -> tuple[float, float, float]:
            return np.random.rand(), random.random(), float(torch.rand(1))

        def seed_all() -> None:
            np.random.seed(123)
            random.seed(123)
            torch.manual_seed(123)

        seed_all()
        expected = draw()
        seed_all()
        simulate(factory(full_table(), seed=0), full_table(), self.budget // 2, workers=2)
        assert draw() == expected, "the study used or reseeded a global random generator"

    # ------------------------------------------------------------------ proposals
    def test_never_proposes_a_cell_twice_on_the_full_table(self, factory: SearcherFactory) -> None:
        bench = full_table()
        st = simulate(factory(bench, seed=0), bench, 2 * self.budget, workers=3)
        keys = [r["key"] for r in st.rows]
        assert len(keys) == 2 * self.budget and len(set(keys)) == len(keys)
        assert all(r["error"] is None for r in st.rows)

    def test_partial_table_keeps_to_its_cells_then_finishes(self, factory: SearcherFactory) -> None:
        bench = partial_table(30)
        s = factory(bench, seed=0, candidates=bench.candidates())
        st = simulate(s, bench, 45, workers=2)
        assert len(st.rows) == 30 and all(r["error"] is None for r in st.rows)
        assert {r["key"] for r in st.rows} == set(bench.keys)
        assert s.suggest("one-more") == Searcher.FINISHED

    def test_sparse_partial_table_is_searched_from_its_cells(self, factory: SearcherFactory, monkeypatch) -> None:
        # A user's partial table holds a few percent of the space (here 1,000 of 26,206 cells).
        # Proposals must come from the table itself, not from draws of the whole space retried
        # until one is tabulated, and never from the random fallback.
        bench = partial_table(1000)
        s = factory(bench, seed=0, candidates=bench.candidates())
        space_type = type(bench.space)
        draws = []
        sample = space_type.sample
        monkeypatch.setattr(space_type, "sample", lambda sp, rng: draws.append(1) or sample(sp, rng))
        st = simulate(s, bench, self.budget, workers=2)
        assert len(st.rows) == self.budget and all(r["error"] is None for r in st.rows)
        assert len({r["key"] for r in st.rows}) == self.budget
        assert not draws, f"{len(draws)} random cells of the whole space drawn on a partial table"
        assert s.n_fallbacks == 0, f"{s.n_fallbacks} proposals fell back to a random table cell"

    def test_every_proposal_respects_max_cost(self, factory: SearcherFactory) -> None:
        bench = full_table()
        params = np.array([bench.query(a)["params"] for a in bench.candidates()])
        limit = float(np.quantile(params, 0.25))
        s = factory(bench, seed=0, cost_fn=TabularEvaluator(bench).cost, max_cost={"params": limit})
        st = simulate(s, bench, self.budget, workers=2)
        assert len(st.rows) == self.budget
        assert max(r["params"] for r in st.rows) <= limit
        assert len({r["key"] for r in st.rows}) == self.budget

    # ------------------------------------------------------------------ failures
    def test_errored_and_stopped_trials_are_recorded(self, factory: SearcherFactory) -> None:
        s = factory(full_table(), seed=0)
        first = [s.suggest(f"t{i}") for i in range(4)]
        s.on_trial_complete("t0", None, error=True)  # crashed
        s.on_trial_complete("t1", {METRIC: 80.0})  # finished
        s.on_trial_complete("t2", None)  # stopped before its first report
        s.on_trial_result("t3", {METRIC: 70.0})  # stopped early by a scheduler after one report
        s.on_trial_complete("t3", {METRIC: 70.0})
        s.on_trial_complete("not-a-trial", {METRIC: 99.0})  # unknown ids are ignored
        nxt = s.suggest("t4")
        assert isinstance(nxt, dict) and nxt not in first
        assert [h["error"] for h in s.history] == [True, False, True, False]
        assert [h["score"] for h in s.history if not h["error"]] == [80.0, 70.0]

    def test_search_goes_on_when_many_evaluations_fail(self, factory: SearcherFactory) -> None:
        full = full_table()
        rows = np.random.default_rng(1).choice(len(full), size=2 * len(full) // 3, replace=False)
        bench = full.subset(sorted(int(r) for r in rows))
        s = factory(bench, seed=0)  # not told the candidates: a third of its lookups fail
        st = simulate(s, bench, self.budget, workers=2)
        errors = [r for r in st.rows if r["error"]]
        assert len(st.rows) == self.budget and errors and len(errors) < self.budget
        assert all("not in this table" in r["error"] for r in errors)
        told = [h["error"] for h in s.history] + [error for *_, error in s.pending]  # fed + not yet fed
        assert len(told) == self.budget and sum(told) == len(errors)
        assert len({r["config"] for r in st.rows}) == self.budget

    # ------------------------------------------------------------------ execution paths
    def test_tune_path_proposes_what_the_simulator_does(self, factory: SearcherFactory, conformance_ray, tmp_path) -> None:
        bench = full_table()
        budget = 12
        sim = configs(simulate(factory(bench, seed=7), bench, budget, workers=1))
        tuned = _tune_configs(factory(bench, seed=7), bench, budget, str(tmp_path))
        assert len(tuned) == budget and tuned == sim
