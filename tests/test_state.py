"""Saved states are plain data: they round-trip exactly, and a crafted file is refused, never run."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from raynas._errors import RaynasError
from raynas._state import StateFileError, dump_state, load_state
from raynas.runner import simulate
from raynas.runner._study import StudySpec, load_study, newest_checkpoint, run_study, save_study
from raynas.searchers import JointSearcher, get_searcher
from raynas.spaces import get_space, space_names
from raynas.testing.conformance import FAST_OPTIONS


class _Exploit:
    """Unpickling this creates ``marker``: what a crafted state file could do instead."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _crafted(path: Path, marker: Path) -> Path:
    """A pickle of a searcher-like state carrying the exploit, written where a state file goes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"version": 1, "class": "EvolutionSearcher", "history": _Exploit(marker)}))
    return path


def _unplain_torch_file(path: Path, marker: Path) -> Path:
    """The exploit inside a ``torch.save`` zip: the same format as a real state file."""
    torch.save({"format": "raynas-state", "version": 1, "state": _Exploit(marker)}, path)
    return path


# ---------------------------------------------------------------------- round trip
@pytest.mark.parametrize("name", space_names())
def test_architectures_of_every_space_round_trip_exactly(name, tmp_path):
    space = get_space(name)
    archs = [space.sample(np.random.default_rng(seed)) for seed in range(3)]
    state = {"archs": archs, "pairs": [(a, 1.5) for a in archs], "live": {"t1": (0, archs[0])}}
    dump_state(state, tmp_path / "s.pt")
    back = load_state(tmp_path / "s.pt")
    assert back == state
    assert [type(a) for a in back["archs"]] == [type(a) for a in archs]
    assert [space.key(a) for a in back["archs"]] == [space.key(a) for a in archs]


def test_plain_values_round_trip_with_their_types(tmp_path):
    state = {
        "f64": np.arange(6, dtype=np.float64).reshape(2, 3), "f32": np.ones(3, np.float32),
        "i8": np.array([-1, 2], np.int8), "u32": np.array([1, 2**32 - 1], np.uint32), "b": np.array([True]),
        "scalar": np.float64(0.1), "int": np.int64(7), "pcg": np.random.default_rng(5).bit_generator.state,
        "big": 2**100, "nan": float("nan"), "t": torch.arange(3.0), "od": OrderedDict(a=1),
        "set": {"x", "y"}, "fs": frozenset({1}), "r": range(2, 6), "bytes": b"\x00\xff", "none": None,
        "nested": [(1, ("a", None)), {2: [True, False]}, {(1, "k"): 0.5}],
    }
    dump_state(state, tmp_path / "s.pt")
    back = load_state(tmp_path / "s.pt")
    for key in ("f64", "f32", "i8", "u32", "b"):
        assert isinstance(back[key], np.ndarray) and back[key].dtype == state[key].dtype
        assert np.array_equal(back[key], state[key])
    assert type(back["scalar"]) is np.float64 and back["scalar"] == state["scalar"]
    assert type(back["int"]) is np.int64 and back["int"] == 7
    assert back["pcg"] == state["pcg"] and back["big"] == 2**100 and np.isnan(back["nan"])
    assert torch.equal(back["t"], state["t"])
    assert back["set"] == {"x", "y"} and type(back["fs"]) is frozenset and back["r"] == range(2, 6)
    assert back["bytes"] == b"\x00\xff" and back["nested"] == state["nested"] and back["od"] == {"a": 1}


@pytest.mark.parametrize(
    "value,match",
    [
        (object(), r"state\['x'\]: a builtins:object is not plain data"),
        (lambda: 0, "function is not plain data"),
        ([np.array(["a"], dtype=object)], r"state\['x'\]\[0\]: numpy dtype object"),
        ({"__raynas__": 1}, "reserved"),
        ({object(): 1}, "dict key of type object"),
        (__import__("collections").deque([1]), "deque is not plain data"),
    ],
)
def test_anything_but_plain_data_is_refused_when_saved(value, match, tmp_path):
    with pytest.raises(TypeError, match=match):
        dump_state({"x": value}, tmp_path / "s.pt")
    assert list(tmp_path.iterdir()) == []  # no file, no temporary file left behind


# ---------------------------------------------------------------------- crafted and broken files
def test_crafted_pickles_and_broken_files_are_refused_not_run(tmp_path):
    marker = tmp_path / "marker"
    dump_state({"a": [1, 2, 3]}, tmp_path / "good.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes((tmp_path / "good.pt").read_bytes()[:100])
    old = tmp_path / "old.pkl"
    old.write_bytes(pickle.dumps({"version": 1, "rows": []}))  # a state of the older pickle format
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    for path in (_crafted(tmp_path / "crafted.pkl", marker), _unplain_torch_file(tmp_path / "crafted.pt", marker),
                 cut, old, foreign, tmp_path / "empty.pt"):
        path.touch()
        with pytest.raises(StateFileError, match=f"{path.name} is not a (readable )?raynas state") as info:
            load_state(path)
        assert "\n" not in str(info.value)
    assert not marker.exists()
    assert load_state(tmp_path / "good.pt") == {"a": [1, 2, 3]}


@pytest.mark.parametrize("method", ["evolution", "tpe", "nao", "dnas"])
def test_searcher_restore_refuses_a_crafted_pickle(method, graph, tmp_path):
    marker = tmp_path / "marker"
    s = get_searcher(method, graph.space, metric="val_accuracy", mode="max", **FAST_OPTIONS.get(method, {}))
    with pytest.raises(StateFileError):
        s.restore(str(_crafted(tmp_path / "searcher.pkl", marker)))
    with pytest.raises(StateFileError):
        s.restore(str(_unplain_torch_file(tmp_path / "searcher.pt", marker)))
    joint = JointSearcher(s, {"lr": __import__("ray").tune.uniform(0.0, 1.0)})
    with pytest.raises(StateFileError):
        joint.restore(str(tmp_path / "searcher.pkl"))
    assert not marker.exists()


def test_tpe_state_is_plain_and_continues_exactly(graph, tmp_path):
    s = get_searcher("tpe", graph.space, metric="val_accuracy", mode="max", seed=4, n_startup_trials=3)
    st = simulate(s, graph, 12, workers=2)
    s.save(str(tmp_path / "s.pt"))
    saved = load_state(tmp_path / "s.pt")["strategy"]["study"]
    assert len(saved["trials"]) >= 12 and {t["state"] for t in saved["trials"]} <= {"COMPLETE", "FAIL", "RUNNING"}
    t = get_searcher("tpe", graph.space, metric="val_accuracy", mode="max", seed=0, n_startup_trials=3)
    t.restore(str(tmp_path / "s.pt"))
    import copy

    a = simulate(s, graph, 30, workers=2, state=copy.deepcopy(st))
    b = simulate(t, graph, 30, workers=2, state=copy.deepcopy(st))
    assert [r["config"] for r in a.rows] == [r["config"] for r in b.rows]


def test_study_checkpoints_round_trip_and_a_crafted_one_is_moved_aside(graph, tmp_path):
    spec = StudySpec("evolution", 0, "val_accuracy", "max", 20, workers=2)
    searcher, st = run_study(spec, graph)
    save_study(tmp_path / "checkpoint-000020.pt", searcher, st)
    again, st2 = load_study(tmp_path / "checkpoint-000020.pt", spec, graph)
    assert st2 == st and again.get_state()["history"] == searcher.get_state()["history"]
    marker = tmp_path / "marker"
    _crafted(tmp_path / "checkpoint-000030.pt", marker)  # newer than the good one
    saved, notes = newest_checkpoint(tmp_path)
    assert saved["sim"] == st and len(notes) == 1 and "checkpoint-000030.pt" in notes[0]
    assert (tmp_path / "checkpoint-000030.pt.unreadable").exists() and not marker.exists()


def test_explain_refuses_crafted_and_old_states(graph, tmp_path):
    from raynas.cli import main
    from raynas.searchers.dnas import explain

    marker = tmp_path / "marker"
    crafted = _crafted(tmp_path / "run" / "studies" / "dnas_seed0" / "searcher.pt", marker)
    with pytest.raises(StateFileError, match="not a readable raynas state"):
        explain(crafted, tmp_path / "explain")
    with pytest.warns(UserWarning, match="skipped.*searcher.pt"), pytest.raises(FileNotFoundError):
        explain(tmp_path / "run", tmp_path / "explain")
    res = CliRunner().invoke(main, ["explain", str(crafted), "--out", str(tmp_path / "explain")])
    assert res.exit_code != 0 and "not a readable raynas state" in res.output and "Traceback" not in res.output
    crafted.rename(crafted.with_name("searcher.pkl"))  # what an older raynas wrote
    with pytest.raises(FileNotFoundError, match="searcher.pkl.*pickles of an older raynas"):
        explain(tmp_path / "run", tmp_path / "explain")
    assert not marker.exists()


def test_resuming_an_experiment_of_the_older_pickle_format_is_refused_before_anything_runs(tmp_path):
    import json

    from raynas.runner._compare import resume

    out = tmp_path / "old"
    (out / "tune" / "study_trainable_0" / "checkpoint_000001").mkdir(parents=True)
    _crafted(out / "tune" / "study_trainable_0" / "checkpoint_000001" / "sim.pkl", tmp_path / "marker")
    (out / "experiment.json").write_text(json.dumps(
        {"kind": "compare", "benchmark": "nasbench_graph", "dataset": "cora", "methods": ["random"], "seeds": 1,
         "budget": 5}))
    with pytest.raises(RaynasError, match="older raynas.*pickles.*run the experiment again"):
        resume(out, progress=False)
    assert not (out / "results.parquet").exists() and not (tmp_path / "marker").exists()
