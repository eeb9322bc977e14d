"""The evaluator layer: the runner evaluates through an Evaluator, a table being one kind."""

from __future__ import annotations

import json

import pytest

from raynas.runner import simulate
from raynas.runner._study import StudySpec, build_searcher, run_study
from raynas.searchers import get_searcher
from raynas.spaces import get_space
from raynas.trainables.evaluator import Evaluator, TabularEvaluator, as_evaluator, evaluate_config


class OpCounter:
    """A toy evaluator with no table: the score of a NAS-Bench-201 cell is its number of 3x3
    convolutions, it takes 10 s per 3x3 conv, and cells with an avg-pool fail."""

    def __init__(self):
        self.space = get_space("nasbench201")
        self.metrics = ["val_accuracy"]
        self.cost_metrics: list[str] = []
        self.partial = False

    def candidates(self):
        return None

    def evaluate(self, arch, hparams=None, fidelity=None, seed=None):
        if "avg_pool_3x3" in arch:
            raise RuntimeError("pooling is not allowed here")
        return {"val_accuracy": float(arch.count("nor_conv_3x3")), "key": self.space.key(arch)}

    def cost(self, arch):
        return None

    def eval_time(self, arch, fidelity=None):
        return None if "nor_conv_1x1" in arch else 10.0 * arch.count("nor_conv_3x3")


def test_tabular_evaluator_is_the_table(graph):
    ev = as_evaluator(graph)
    assert isinstance(ev, TabularEvaluator) and isinstance(ev, Evaluator)
    assert as_evaluator(ev) is ev
    arch = graph.candidates()[5]
    got = ev.evaluate(arch)
    assert got == {**graph.query(arch), "key": graph.space.key(arch)}
    assert ev.cost(arch) == {"params": graph.query(arch)["params"], "latency": graph.query(arch)["latency"]}
    assert ev.eval_time(arch) == graph.eval_time(arch)
    assert ev.partial is False and ev.candidates() is None
    assert ev.optimum("val_accuracy") == graph.optimum("val_accuracy")
    with pytest.raises(TypeError, match="expected an Evaluator or a TabularBenchmark"):
        as_evaluator({"not": "an evaluator"})


def test_a_partial_table_tells_its_candidates(nb201_excerpt):
    ev = TabularEvaluator(nb201_excerpt)
    assert ev.partial and len(ev.candidates()) == len(nb201_excerpt)
    assert ev.cost_metrics == [] and ev.cost(ev.candidates()[0]) is None


def test_failures_are_returned_not_raised():
    ev = OpCounter()
    space = ev.space
    pool = space.from_string("|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    result, error = evaluate_config(ev, space.to_config(pool))
    assert result is None and error == "RuntimeError: pooling is not allowed here"
    result, error = evaluate_config(ev, {"nonsense": 1})
    assert result is None and error


def test_the_simulator_runs_any_evaluator():
    ev = OpCounter()
    s = get_searcher("evolution", ev.space, metric="val_accuracy", mode="max", seed=0)
    st = simulate(s, ev, 60, workers=1)
    assert len(st.rows) == 60
    failed = [r for r in st.rows if r["error"]]
    assert failed and all("pooling is not allowed" in r["error"] for r in failed)
    assert sum(h["error"] for h in s.history) + sum(p[3] for p in s.pending) == len(failed)
    # one worker: the clock advances by eval_time, one simulated second where it is unknown
    clock = 0.0
    for r in st.rows:
        arch = ev.space.from_config(json.loads(r["config"]))
        if r["error"] is None:
            seconds = ev.eval_time(arch)
            clock += 1.0 if seconds is None else seconds
        assert r["time"] == pytest.approx(clock)
        if r["error"] is None:  # the evaluator's metrics reach the rows and the searcher
            assert r["val_accuracy"] == arch.count("nor_conv_3x3")
    assert [h["score"] for h in s.history if not h["error"]] == [
        r["val_accuracy"] for r in st.rows if r["error"] is None
    ][: len([h for h in s.history if not h["error"]])]


def test_studies_take_an_evaluator(graph):
    spec = StudySpec("random", 3, "val_accuracy", "max", 20)
    _, via_table = run_study(spec, graph)
    _, via_evaluator = run_study(spec, TabularEvaluator(graph))
    assert via_table.rows == via_evaluator.rows
    s = build_searcher(StudySpec("random", 0, "val_accuracy", "max", 5, max_cost={"params": 1.0}), graph)
    assert s.cost_fn is not None and set(s.cost_fn(graph.candidates()[0])) == {"params", "latency"}
