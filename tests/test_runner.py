"""The simulated backend, the Ray Tune path, and `compare` as one Tune experiment."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from raynas import UnknownNameError
from raynas.runner import simulate
from raynas.runner._compare import CompareConfig, ExperimentExistsError, compare
from raynas.runner._study import StudySpec, run_study
from raynas.runner._tune_run import TuneRunConfig, run_tune
from raynas.searchers import get_searcher


def make(name, bench, seed=0, **kw):
    return get_searcher(name, bench.space, metric="test_accuracy", mode="max", seed=seed, **kw)


def test_one_worker_clock_is_the_sum_of_training_times(nb201):
    st = simulate(make("random", nb201), nb201, 30, workers=1)
    durations = [nb201.eval_time(nb201.space.from_config(json.loads(r["config"]))) for r in st.rows]
    np.testing.assert_allclose([r["time"] for r in st.rows], np.cumsum(durations))
    assert [r["suggestion"] for r in st.rows] == list(range(30))


def test_many_workers_finish_in_completion_order(nb201):
    st = simulate(make("random", nb201), nb201, 60, workers=8)
    times = [r["time"] for r in st.rows]
    assert times == sorted(times)
    assert [r["suggestion"] for r in st.rows] != list(range(60))  # short jobs overtake long ones
    single = simulate(make("random", nb201), nb201, 60, workers=1)
    assert st.clock < single.clock / 4  # eight workers: much shorter simulated wall time


def test_same_seed_and_workers_same_rows(nb201):
    a = simulate(make("evolution", nb201, seed=5), nb201, 80, workers=4).rows
    b = simulate(make("evolution", nb201, seed=5), nb201, 80, workers=4).rows
    assert a == b


@pytest.mark.parametrize("budget,workers", [(0, 1), (10, 0), (-3, 2)])
def test_non_positive_budget_or_workers(nb201, budget, workers):
    with pytest.raises(ValueError, match="must be a positive number"):
        simulate(make("random", nb201), nb201, budget, workers)


def test_failed_lookups_are_recorded_not_raised(nb201, tmp_path):
    from raynas.benchmarks._import import import_table

    space = nb201.space
    archs = [space.sample(np.random.default_rng(i)) for i in range(5)]
    csv = tmp_path / "t.csv"
    csv.write_text("arch,acc\n" + "".join(f"{space.to_string(a)},{i}\n" for i, a in enumerate(archs)))
    bench = import_table(csv, "nasbench201", "arch", {"test_accuracy": "acc"})
    # A searcher that ignores the table's candidates hits untabulated cells.
    st = simulate(make("random", bench), bench, 20, workers=2)
    errors = [r["error"] for r in st.rows if r["error"]]
    assert len(st.rows) == 20 and errors
    assert all("CellNotTabulatedError" in e and "not in this table" in e for e in errors)


def test_tune_path_matches_simulated_path(ray_session, nb201, tmp_path):
    cfg = TuneRunConfig(benchmark="nasbench201", method="evolution", seed=7, budget=16,
                        data=nb201.source, metric="test_accuracy")
    path = run_tune(cfg, tmp_path / "tune")
    tuned = pq.read_table(path).to_pylist()
    sim = simulate(make("evolution", nb201, seed=7), nb201, 16, workers=1).rows
    assert [r["config"] for r in tuned] == [r["config"] for r in sim]
    assert [r["test_accuracy"] for r in tuned] == pytest.approx([r["test_accuracy"] for r in sim])


def test_tune_path_records_errored_trials(ray_session, tmp_path, nb201):
    from raynas.benchmarks._import import import_table

    space = nb201.space
    archs = [space.sample(np.random.default_rng(i)) for i in range(3)]
    csv = tmp_path / "t.csv"
    csv.write_text("arch,acc\n" + "".join(f"{space.to_string(a)},{i}\n" for i, a in enumerate(archs)))
    part = import_table(csv, "nasbench201", "arch", {"test_accuracy": "acc"})
    # Write the table where `custom` finds it; a Tune-path searcher here is told the candidates,
    # so instead give it an option that breaks every lookup: a fidelity the table lacks.
    path = part.to_parquet(tmp_path / "custom.parquet")
    cfg = TuneRunConfig(benchmark="custom", method="random", seed=0, budget=3, data=str(path),
                        metric="test_accuracy", fidelity=200)
    rows = pq.read_table(run_tune(cfg, tmp_path / "run")).to_pylist()
    assert len(rows) == 3
    assert all(r["error"] and "fidelity" in r["error"] for r in rows)


def test_compare_runs_every_study_and_matches_in_process_runs(ray_session, nb201, tmp_path):
    cfg = CompareConfig(benchmark="nasbench201", data=nb201.source, methods=["evolution", "random"],
                        seeds=2, budget=30, workers=2, checkpoint_every=10, metric="test_accuracy")
    path = compare(cfg, tmp_path / "cmp", progress=False)
    rows = pq.read_table(path).to_pylist()
    assert len(rows) == 2 * 2 * 30
    for r in rows[:3]:
        assert set(r) >= {"experiment", "method", "seed", "query", "time", "key", "config",
                          "test_accuracy", "incumbent", "error"}
    spec = StudySpec("evolution", 1, "test_accuracy", "max", 30, workers=2)
    _, st = run_study(spec, nb201)
    mine = [r for r in rows if r["method"] == "evolution" and r["seed"] == 1]
    assert [r["config"] for r in mine] == [r["config"] for r in st.rows]
    inc = [r["incumbent"] for r in mine]
    assert inc == list(np.maximum.accumulate([r["test_accuracy"] for r in mine]))
    for name in ("summary.md", "summary.csv", "curves.png", "studies/evolution_seed1/searcher.pkl"):
        assert (tmp_path / "cmp" / name).exists()
    assert "| evolution | 2 |" in (tmp_path / "cmp" / "summary.md").read_text()
    # the folder now holds an experiment: refused without --resume
    other = CompareConfig(benchmark="nasbench201", data=nb201.source, methods=["random"], seeds=1, budget=5)
    with pytest.raises(ExperimentExistsError, match="different experiment.*--resume"):
        compare(other, tmp_path / "cmp", progress=False)
    # and resuming a finished experiment reruns nothing and gives the same rows
    again = compare(other, tmp_path / "cmp", resume=True, progress=False)
    assert pq.read_table(again).to_pylist() == rows


@pytest.mark.parametrize(
    "change,match",
    [
        ({"budget": 0}, "budget must be a positive"),
        ({"seeds": -1}, "seeds must be a positive"),
        ({"workers": 0}, "workers must be a positive"),
        ({"methods": ["evolution", "gradient_magic"]}, "unknown method 'gradient_magic'.*random"),
        ({"benchmark": "nasbench_9000"}, "unknown benchmark.*nasbench201"),
        ({"dataset": "svhn"}, "unknown dataset of nasbench201.*cifar100"),
    ],
)
def test_compare_rejects_bad_input_before_starting(tmp_path, change, match):
    kw = dict(benchmark="nasbench201", methods=["random"], seeds=2, budget=10)
    kw.update(change)
    with pytest.raises((ValueError, UnknownNameError), match=match):
        compare(CompareConfig(**kw), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
