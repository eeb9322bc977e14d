"""The simulated backend, the Ray Tune path, and `compare` as one Tune experiment.

Runs on data that needs no outside file: the complete NAS-Bench-Graph table (``graph``, searched
on validation accuracy) and the committed NAS-Bench-201 excerpt (``nb201_excerpt``, partial).
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pyarrow.parquet as pq
import pytest

from raynas import UnknownNameError
from raynas.runner import simulate
from raynas.runner._compare import CompareConfig, ExperimentExistsError, compare
from raynas.runner._study import StudySpec, run_study
from raynas.searchers import get_searcher


def objective(bench) -> str:
    return "val_accuracy" if "val_accuracy" in bench.metrics else "test_accuracy"


def make(name, bench, seed=0, **kw):
    """A searcher for ``bench`` that keeps to its cells, as the runner builds it for a partial table."""
    candidates = bench.candidates() if bench.partial else None
    return get_searcher(name, bench.space, metric=objective(bench), mode="max", seed=seed,
                        candidates=candidates, **kw)


def test_one_worker_clock_is_the_sum_of_training_times(graph):
    st = simulate(make("random", graph), graph, 30, workers=1)
    durations = [graph.eval_time(graph.space.from_config(json.loads(r["config"]))) for r in st.rows]
    assert len(set(durations)) > 20 and all(d > 0 for d in durations)  # Graph's latencies differ
    np.testing.assert_allclose([r["time"] for r in st.rows], np.cumsum(durations))
    assert [r["suggestion"] for r in st.rows] == list(range(30))
    assert st.clock == pytest.approx(sum(durations))


@pytest.mark.parametrize("table", ["graph", "nb201_excerpt"])
def test_many_workers_finish_in_completion_order(request, table):
    bench = request.getfixturevalue(table)
    st = simulate(make("random", bench), bench, 60, workers=8)
    assert not any(r["error"] for r in st.rows)
    assert len({bench.eval_time(bench.space.from_config(json.loads(r["config"]))) for r in st.rows}) > 5
    times = [r["time"] for r in st.rows]
    assert times == sorted(times)
    assert [r["suggestion"] for r in st.rows] != list(range(60))  # short jobs overtake long ones
    assert sorted(r["suggestion"] for r in st.rows) == list(range(60))
    single = simulate(make("random", bench), bench, 60, workers=1)
    assert st.clock < single.clock / 4  # eight workers: much shorter simulated wall time


@pytest.mark.parametrize("table", ["graph", "nb201_excerpt"])
def test_same_seed_and_workers_same_rows(request, table):
    bench = request.getfixturevalue(table)
    a = simulate(make("evolution", bench, seed=5), bench, 80, workers=4).rows
    b = simulate(make("evolution", bench, seed=5), bench, 80, workers=4).rows
    assert a == b
    assert not any(r["error"] for r in a)
    c = simulate(make("evolution", bench, seed=6), bench, 80, workers=4).rows
    assert [r["config"] for r in c] != [r["config"] for r in a]


@pytest.mark.parametrize("budget,workers", [(0, 1), (10, 0), (-3, 2)])
def test_non_positive_budget_or_workers(graph, budget, workers):
    with pytest.raises(ValueError, match="must be a positive number"):
        simulate(make("random", graph), graph, budget, workers)


def test_failed_lookups_are_recorded_not_raised(nb201_excerpt, tmp_path):
    from raynas.benchmarks._import import import_table

    space = nb201_excerpt.space
    archs = [space.sample(np.random.default_rng(i)) for i in range(5)]
    csv = tmp_path / "t.csv"
    csv.write_text("arch,acc\n" + "".join(f"{space.to_string(a)},{i}\n" for i, a in enumerate(archs)))
    bench = import_table(csv, "nasbench201", "arch", {"test_accuracy": "acc"})
    # A searcher that ignores the table's candidates hits untabulated cells.
    searcher = get_searcher("random", bench.space, metric="test_accuracy", mode="max", seed=0)
    st = simulate(searcher, bench, 20, workers=2)
    errors = [r["error"] for r in st.rows if r["error"]]
    assert len(st.rows) == 20 and errors
    assert all("CellNotTabulatedError" in e and "not in this table" in e for e in errors)


def test_searchers_keep_to_the_cells_of_a_partial_table(nb201_excerpt):
    assert nb201_excerpt.partial and len(nb201_excerpt) < 400
    for method in ("random", "evolution"):
        st = simulate(make(method, nb201_excerpt, seed=3), nb201_excerpt, 100, workers=4)
        assert len(st.rows) == 100 and not any(r["error"] for r in st.rows)
        assert all(nb201_excerpt.contains(nb201_excerpt.space.from_config(json.loads(r["config"])))
                   for r in st.rows)


def test_tune_path_matches_simulated_path(ray_session, graph, tmp_path):
    cfg = CompareConfig(benchmark="nasbench_graph", dataset="cora", methods=["evolution"], seeds=1, first_seed=7,
                        budget=16, metric="val_accuracy", backend="tune")
    path = compare(cfg, tmp_path / "tune", progress=False)
    tuned = pq.read_table(path).to_pylist()
    sim = simulate(make("evolution", graph, seed=7), graph, 16, workers=1).rows
    assert len(tuned) == 16 and not any(r["error"] for r in tuned)
    assert [r["config"] for r in tuned] == [r["config"] for r in sim]
    assert [r["val_accuracy"] for r in tuned] == pytest.approx([r["val_accuracy"] for r in sim])
    assert [r["test_accuracy"] for r in tuned] == pytest.approx([r["test_accuracy"] for r in sim])


def test_tune_path_records_errored_trials(ray_session, tmp_path, nb201_excerpt):
    from raynas.benchmarks._import import import_table

    space = nb201_excerpt.space
    archs = [space.sample(np.random.default_rng(i)) for i in range(3)]
    csv = tmp_path / "t.csv"
    csv.write_text("arch,acc\n" + "".join(f"{space.to_string(a)},{i}\n" for i, a in enumerate(archs)))
    part = import_table(csv, "nasbench201", "arch", {"test_accuracy": "acc"})
    # Write the table where `custom` finds it; a Tune-path searcher here is told the candidates,
    # so instead give it an option that breaks every lookup: a fidelity the table lacks.
    path = part.to_parquet(tmp_path / "custom.parquet")
    cfg = CompareConfig(benchmark="custom", methods=["random"], seeds=1, budget=3, data=str(path),
                        metric="test_accuracy", fidelity=200, backend="tune")
    rows = pq.read_table(compare(cfg, tmp_path / "run", progress=False)).to_pylist()
    assert len(rows) == 3
    assert all(r["error"] and "fidelity" in r["error"] for r in rows)


def test_compare_runs_every_study_and_matches_in_process_runs(ray_session, graph, tmp_path):
    cfg = CompareConfig(benchmark="nasbench_graph", dataset="cora", methods=["evolution", "random"],
                        seeds=2, budget=30, workers=2, checkpoint_every=10, metric="val_accuracy")
    path = compare(cfg, tmp_path / "cmp", progress=False)
    rows = pq.read_table(path).to_pylist()
    assert len(rows) == 2 * 2 * 30
    assert not any(r["error"] for r in rows)
    for r in rows[:3]:
        assert set(r) >= {"experiment", "method", "seed", "query", "time", "key", "config",
                          "val_accuracy", "test_accuracy", "incumbent", "error"}
    spec = StudySpec("evolution", 1, "val_accuracy", "max", 30, workers=2)
    _, st = run_study(spec, graph)
    mine = [r for r in rows if r["method"] == "evolution" and r["seed"] == 1]
    assert [r["config"] for r in mine] == [r["config"] for r in st.rows]
    assert [r["time"] for r in mine] == pytest.approx([r["time"] for r in st.rows])
    inc = [r["incumbent"] for r in mine]
    assert inc == list(np.maximum.accumulate([r["val_accuracy"] for r in mine]))
    for name in ("summary.md", "summary.csv", "curves.png", "studies/evolution_seed1/searcher.pt"):
        assert (tmp_path / "cmp" / name).exists()
    assert "| evolution | 2 |" in (tmp_path / "cmp" / "summary.md").read_text()
    # the folder now holds an experiment: another one is refused, resumed or not, naming the differences
    other = CompareConfig(benchmark="nasbench_graph", dataset="cora", methods=["random"], seeds=1, budget=5)
    for resume in (False, True):
        with pytest.raises(ExperimentExistsError, match="with methods=evolution,random, seeds=2, budget=30, .*"
                                                        "you asked methods=random, seeds=1, budget=5"):
            compare(other, tmp_path / "cmp", resume=resume, progress=False)
    with pytest.raises(ExperimentExistsError, match="already holds this experiment; pass --resume"):
        compare(cfg, tmp_path / "cmp", progress=False)
    # and resuming a finished experiment reruns nothing and gives the same rows
    again = compare(cfg, tmp_path / "cmp", resume=True, progress=False)
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


def test_studies_get_a_gpu_where_the_cluster_has_one_and_the_searcher_wants_it(monkeypatch):
    import ray

    from raynas.runner._compare import study_resources

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 4.0, "GPU": 2.0})
    assert study_resources({"study": {"method": "dnas"}}).bundles == [{"CPU": 1.0, "GPU": 1.0}]
    assert study_resources({"study": {"method": "tpe"}}).bundles == [{"CPU": 1.0}]
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 4.0})
    assert study_resources({"study": {"method": "dnas"}}).bundles == [{"CPU": 1.0}]


def test_gpus_per_study_asks_for_gpus_the_cluster_does_not_have_yet(monkeypatch, tmp_path):
    """On an autoscaling cluster no GPU node is up at the start: a number still asks Tune for GPUs."""
    import ray
    from ray import tune

    from raynas.cli import _config
    from raynas.runner._compare import _trainable, study_resources

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 4.0})  # CPUs only, for now
    dnas = {"study": {"method": "dnas"}}
    assert study_resources(dnas, "auto").bundles == [{"CPU": 1.0}]
    assert study_resources(dnas, 1.0).bundles == [{"CPU": 1.0, "GPU": 1.0}]
    assert study_resources({"study": {"method": "nao"}}, 0.5).bundles == [{"CPU": 1.0, "GPU": 0.5}]
    assert study_resources({"study": {"method": "random"}}, 1.0).bundles == [{"CPU": 1.0}]
    # the option of the command line reaches the resources of the trainable Tune runs
    args = dict(benchmark="nasbench_graph", dataset="cora", data=None, metric=None, seeds=1, budget=5,
                workers=1, max_flops=None, max_params=None, max_latency=None)
    cfg = _config(["dnas"], **args, gpus_per_study="1")
    assert cfg.gpus_per_study == 1.0
    monkeypatch.setattr(tune, "with_parameters", lambda f, **kw: lambda config: f(config, **kw))
    trainable = _trainable(None, tmp_path, cfg.gpus_per_study)
    assert trainable._resources(dnas).bundles == [{"CPU": 1.0, "GPU": 1.0}]
    with pytest.raises(ValueError, match="gpus_per_study"):
        CompareConfig(**{**asdict(cfg), "gpus_per_study": -1}).validate()


@pytest.mark.parametrize("args, message", [
    (["--gpus-per-study", "lots"], "neither a number nor auto"),
    (["--gpus-per-study", "1", "--backend", "tune"], "--gpus-per-study applies to the sim backend"),
    (["--gpus-per-study", "1", "--trainable", "train", "--space", "nasbench201"], "--gpus-per-study do(es) not apply"),
])
def test_gpus_per_study_is_refused_where_it_does_not_apply(tmp_path, args, message):
    from click.testing import CliRunner

    from raynas.cli import main

    out = tmp_path / "bad"
    res = CliRunner().invoke(main, ["compare", "--benchmark", "nasbench_graph", "--methods", "dnas", "--seeds", "1",
                                    "--budget", "2", *args, "--out", str(out)])
    assert res.exit_code == 2 and message in res.output, res.output
    assert not out.exists()


def test_a_tune_run_folder_of_the_older_format_loads_as_one_experiment_definition(tmp_path):
    from raynas.runner._compare import load_config

    legacy = {"kind": "tune-run", "benchmark": "nasbench_graph", "method": "evolution", "seed": 3, "budget": 20,
              "dataset": "cora", "data": None, "metric": None, "workers": 2, "fidelity": None, "max_cost": {},
              "options": {"population_size": 5}, "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "name": "run"}
    (tmp_path / "experiment.json").write_text(json.dumps(legacy))
    cfg = load_config(tmp_path)
    assert (cfg.methods, cfg.seeds, cfg.first_seed, cfg.backend, cfg.workers) == (["evolution"], 1, 3, "tune", 2)
    assert cfg.options == {"evolution": {"population_size": 5}}
    cfg.validate()
    assert [s.seed for s in cfg.studies("val_accuracy", "max")] == [3]
