"""Fault injection: a worker node lost mid-sweep, a driver killed again and again, failing evaluations.

Runs on the embedded NAS-Bench-Graph table (Cora): no outside data file is needed. Every test
ends by comparing the results with an uninterrupted in-process :func:`run_study` of each study.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest

from raynas.runner import _compare, _tune_run
from raynas.runner._compare import CompareConfig, compare
from raynas.runner._study import StudySpec, run_study
from raynas.trainables.evaluator import TabularEvaluator

GRAPH = ["--benchmark", "nasbench_graph", "--dataset", "cora", "--metric", "val_accuracy"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(TUNE_GLOBAL_CHECKPOINT_S="0", TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1", RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    return env


def _assert_equals_uninterrupted(rows: list[dict], bench, methods, seeds, budget: int, evaluator=None) -> None:
    """Every study's rows exactly once, in order, equal to an uninterrupted in-process run."""
    assert len(rows) == len(methods) * len(seeds) * budget
    for method in methods:
        for seed in seeds:
            mine = [r for r in rows if r["method"] == method and r["seed"] == seed]
            assert [r["query"] for r in mine] == list(range(budget)), f"{method} seed {seed}"
            _, st = run_study(StudySpec(method, seed, "val_accuracy", "max", budget), evaluator or bench)
            for column in ("config", "time", "val_accuracy", "error"):
                assert [r[column] for r in mine] == [r.get(column) for r in st.rows], (method, seed, column)


def _trial_failures(out: Path) -> int:
    """How many times Tune restarted a lost trial, from its newest experiment state."""
    state = json.loads(max((out / "tune").glob("experiment_state-*.json")).read_text())
    return sum(json.loads(entry[1])["num_failures"] for entry in state["trial_data"])


# ---------------------------------------------------------------------------- a worker node lost
@pytest.mark.slow
def test_compare_survives_a_worker_node_killed_mid_sweep(graph, tmp_path):
    """Three one-CPU nodes run three studies at once; one worker node is killed (no graceful
    shutdown) once all three have checkpointed. Tune restarts the lost study on a node left
    (``FailureConfig.max_failures``), where it goes on from its newest checkpoint."""
    assert _compare.MAX_FAILURES > 0
    out, budget, seeds = tmp_path / "exp", 150, range(4)
    script = textwrap.dedent(f"""
        import json, threading, time, ray
        from pathlib import Path
        from ray.cluster_utils import Cluster
        from raynas.runner._compare import CompareConfig, compare
        cluster = Cluster(initialize_head=True, head_node_args={{"num_cpus": 1}})
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        ray.init(address=cluster.address, log_to_driver=False)
        out, budget = Path({str(out)!r}), {budget}
        killed = {{}}

        def running():  # studies with a checkpoint that have not finished
            started = {{p.parent.name for p in out.glob("studies/*/checkpoint-*.pt")}}
            return started - {{p.parent.name for p in out.glob(f"studies/*/checkpoint-{{budget:06d}}.pt")}}

        def kill():
            deadline = time.time() + 300
            while len(running()) < 3 and time.time() < deadline:
                time.sleep(0.01)
            # three one-CPU nodes, three studies under way: one of them runs on the node killed
            killed.update(node=workers[0].node_id, running=sorted(running()))
            cluster.remove_node(workers[0], allow_graceful=False)

        thread = threading.Thread(target=kill)
        thread.start()
        cfg = CompareConfig(benchmark="nasbench_graph", dataset="cora", metric="val_accuracy", methods=["tpe"],
                            seeds={len(seeds)}, budget=budget, checkpoint_every=10)
        compare(cfg, out, progress=False)
        thread.join()
        print("KILLED", json.dumps(killed))
        ray.shutdown()
        cluster.shutdown()
    """)
    done = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    killed = json.loads(done.stdout.split("KILLED", 1)[1].strip().splitlines()[0])
    assert len(killed["running"]) == 3
    assert _trial_failures(out) >= 1  # a study was lost with the node and restarted
    studies = json.loads((out / "studies.json").read_text())
    assert all(s["complete"] and s["error"] is None and s["queries"] == budget for s in studies.values())
    assert all(studies[name]["node"] != killed["node"] for name in killed["running"])  # finished elsewhere
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert not any(r["error"] for r in rows)
    _assert_equals_uninterrupted(rows, graph, ["tpe"], seeds, budget)


# ---------------------------------------------------------------------------- the driver killed, again and again
def _progress(out: Path) -> int:
    """Queries checkpointed so far, over all studies (the newest checkpoint of each names its count)."""
    newest: dict[str, int] = {}
    for path in out.glob("studies/*/checkpoint-*.pt"):
        queries = int(path.stem.split("-")[1])
        newest[path.parent.name] = max(newest.get(path.parent.name, 0), queries)
    return sum(newest.values())


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def _wait_gone(procs: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    deadline = time.time() + seconds
    while _alive(procs) and time.time() < deadline:
        time.sleep(0.2)
    return _alive(procs)


@pytest.mark.slow
def test_driver_killed_at_random_points_resumes_to_the_uninterrupted_results(graph, tmp_path):
    """`raynas compare` is SIGKILLed at points a seeded Generator draws (after k checkpointed queries),
    and each `raynas resume` is killed again where the next point falls; a last resume finishes.

    Only the driver is killed, not its Ray processes: Ray's raylet and GCS must die with it, its
    agents exit by themselves within about a minute, and each resume starts a Ray instance of its
    own (it would fail if it took over the dead one), as the README says.
    """
    out, budget, methods, seeds = tmp_path / "exp", 150, ("evolution", "tpe"), (0, 1)
    total = len(methods) * len(seeds) * budget
    points = np.sort(np.random.default_rng(12).choice(np.arange(10, total, 10), size=3, replace=False))
    compare_cmd = [sys.executable, "-m", "raynas.cli", "compare", *GRAPH, "--methods", ",".join(methods),
                   "--seeds", str(len(seeds)), "--budget", str(budget), "--checkpoint-every", "10",
                   "--out", str(out), "--quiet"]
    resume_cmd = [sys.executable, "-m", "raynas.cli", "resume", str(out), "--quiet"]
    left_behind: list[tuple[float, list[psutil.Process]]] = []  # (when, what the driver had started)
    killed_at = []
    for i, point in enumerate(points):
        start = _progress(out)
        proc = subprocess.Popen(resume_cmd if i else compare_cmd, env=_env(), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 300
        while (_progress(out) < max(point, start + 1) and time.time() < deadline and proc.poll() is None):
            time.sleep(0.02)
        assert proc.poll() is None, f"run {i} ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        ray_procs = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)  # the driver dies without any cleanup; its Ray processes are left be
        proc.wait()
        killed_at.append(_progress(out))
        # raylet, GCS and the study workers die with the driver (Ray ties their fate to it); only
        # the dashboard and runtime-env agents linger, for up to a minute
        names = {p.pid: p.name() for p in ray_procs}
        assert {"raylet", "gcs_server"} <= set(names.values()), names
        core = [p for p in ray_procs if not names[p.pid].startswith(("ray::Dashboard", "ray::RuntimeEnv"))]
        assert not _wait_gone(core, 20), [names[p.pid] for p in _alive(core)]
        left_behind.append((time.time(), ray_procs))
        assert not (out / "results.parquet").exists()
    assert killed_at == sorted(killed_at) and killed_at[-1] < total, killed_at
    done = subprocess.run(resume_cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert not any(r["error"] for r in rows)
    _assert_equals_uninterrupted(rows, graph, methods, seeds, budget)
    studies = json.loads((out / "studies.json").read_text())
    assert all(s["complete"] and s["queries"] == budget for s in studies.values())
    # and what Ray left running after each kill (its two agents) went within 90 s (the last kill's are
    # not waited for, to keep the test short)
    for when, procs in left_behind[:-1]:
        assert not _wait_gone(procs, when + 90 - time.time()), [(p.pid, p.name()) for p in _alive(procs)]
    print("killed at", killed_at, "of", total)


# ---------------------------------------------------------------------------- evaluations that raise
class FlakyEvaluator(TabularEvaluator):
    """A table lookup that raises, as a broken device or a bug in a trainable would, on one cell in four."""

    def evaluate(self, arch, hparams=None, fidelity=None, seed=None):
        key = self.space.key(arch)
        if zlib.crc32(key.encode()) % 4 == 0:
            raise RuntimeError(f"simulated device fault on cell {key}")
        return super().evaluate(arch, hparams, fidelity, seed)


@pytest.fixture
def flaky(monkeypatch):
    """Both backends evaluate with :class:`FlakyEvaluator`."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    for module in (_compare, _tune_run):
        monkeypatch.setattr(module, "TabularEvaluator", FlakyEvaluator)


def _check_errors(rows: list[dict], budget: int) -> None:
    """Some (not all) queries failed with the evaluator's message, and the study went on after them."""
    errors = [r for r in rows if r["error"]]
    assert 0 < len(errors) < budget // 2 and len(rows) == budget
    assert all("RuntimeError" in r["error"] and "simulated device fault on cell " in r["error"] for r in errors)
    assert all(r["val_accuracy"] is None for r in errors)
    assert any(not r["error"] for r in rows if r["query"] > errors[0]["query"])
    scores = [r["val_accuracy"] for r in rows if not r["error"]]
    assert rows[-1]["incumbent"] == max(scores)


def test_compare_records_an_evaluator_raising_mid_study_and_goes_on(ray_session, flaky, graph, tmp_path):
    methods, budget = ("evolution", "tpe"), 40
    cfg = CompareConfig(benchmark="nasbench_graph", dataset="cora", methods=list(methods), seeds=1, budget=budget,
                        checkpoint_every=10, metric="val_accuracy")
    rows = pq.read_table(compare(cfg, tmp_path / "cmp", progress=False)).to_pylist()
    for method in methods:
        _check_errors([r for r in rows if r["method"] == method], budget)
    _assert_equals_uninterrupted(rows, graph, methods, (0,), budget, evaluator=FlakyEvaluator(graph))
    studies = json.loads((tmp_path / "cmp" / "studies.json").read_text())
    assert all(s["complete"] and s["error"] is None for s in studies.values())
    summary = (tmp_path / "cmp" / "summary.md").read_text()
    assert "| evolution | 1 |" in summary and "| tpe | 1 |" in summary


def test_tune_path_records_an_evaluator_raising_on_some_cells(ray_session, flaky, graph, tmp_path):
    budget = 16
    cfg = CompareConfig(benchmark="nasbench_graph", dataset="cora", methods=["random"], seeds=1, budget=budget,
                        metric="val_accuracy", backend="tune")
    rows = pq.read_table(compare(cfg, tmp_path / "run", progress=False)).to_pylist()
    _check_errors(rows, budget)
    _, st = run_study(StudySpec("random", 0, "val_accuracy", "max", budget), FlakyEvaluator(graph))
    assert [r["config"] for r in rows] == [r["config"] for r in st.rows]  # one worker: the simulator's order
    assert [bool(r["error"]) for r in rows] == [bool(r["error"]) for r in st.rows]
    assert "| random | 1 |" in (tmp_path / "run" / "summary.md").read_text()


# ---------------------------------------------------------------------------- state a kill left behind
def test_a_tune_experiment_whose_pickles_a_kill_cut_short_is_set_aside(tmp_path, monkeypatch, caplog):
    """A kill during Tune's copy of its state left basic-variant-state-*.json empty; Tune then ran
    an empty experiment and `raynas resume` wrote results without a single study. Now the folder
    is set aside and a fresh experiment runs the studies on from their own checkpoints."""
    import io
    import pickle

    import torch
    from ray import tune

    from raynas.runner._tune_state import restorable, state_problem

    monkeypatch.setattr(tune.Tuner, "can_restore", staticmethod(lambda path: True))
    whole = pickle.dumps({"trials": list(range(100))})
    # A raynas searcher's state under Tune's name: a torch.save archive (seen flagged as cut short,
    # so every `--backend tune` resume restarted its studies from their seeds).
    buffer = io.BytesIO()
    torch.save({"format": "raynas-state", "rows": list(range(100))}, buffer)
    archive = buffer.getvalue()
    for name, data, problem in (("basic-variant-state-2026-12-02_10-26-45.json", b"", "is empty"),
                                ("searcher-state-2026-12-02_10-26-45.pkl", archive, None),
                                ("searcher-state-2026-12-02_10-26-45.pkl", archive[:-40], "is cut short"),
                                ("basic-variant-state-2026-12-02_10-26-45.json", whole[:-9], "is cut short"),
                                ("tuner.pkl", whole[: len(whole) // 2], "is cut short"),
                                ("tuner.pkl", whole, None)):
        folder = tmp_path / "exp" / "tune"
        folder.mkdir(parents=True)
        (folder / "experiment_state-2026-12-02_10-26-45.json").write_text('{"trial_data": []}')
        (folder / "basic-variant-state-2026-12-02_10-26-26.json").write_bytes(whole)  # an older, whole one
        (folder / name).write_bytes(data)
        found = state_problem(folder)
        assert (found is None) if problem is None else (found == f"{name} {problem}")
        with caplog.at_level("WARNING", logger="raynas"):
            assert restorable(folder, "the Tune experiment", "a fresh one runs") is (problem is None)
        if problem is not None:
            assert not folder.exists() and f"{name} {problem}" in caplog.text
            assert len(list((tmp_path / "exp").glob("tune.incomplete-*"))) >= 1  # kept, never deleted
        (tmp_path / "exp").rename(tmp_path / f"done-{len(list(tmp_path.iterdir()))}")


def test_a_checkpoint_that_vanishes_before_it_is_read_is_passed_over(graph, tmp_path, monkeypatch):
    """A process of a lost node or killed driver may still run the study and drop a checkpoint for a
    newer one while the restarted study reads it: the restarted one goes on from an older one."""
    from raynas.runner import _study

    spec = StudySpec("evolution", 0, "val_accuracy", "max", 30, checkpoint_every=10)
    folder = tmp_path / spec.name
    run_study(spec, graph, on_checkpoint=lambda s, st: _study.write_checkpoint(folder, s, st))
    older, newest = _study.checkpoints(folder)
    read = _study.read_checkpoint

    def vanishing(path):
        if Path(path) == newest:
            raise FileNotFoundError(path)
        return read(path)

    monkeypatch.setattr(_study, "read_checkpoint", vanishing)
    saved, notes = _study.newest_checkpoint(folder)
    assert len(saved["sim"].rows) == 20 and notes == [] and newest.exists()


class CrashingEvaluator(TabularEvaluator):
    """A table lookup whose process dies outright (as on a segfault or the OOM killer) on one cell."""

    def __init__(self, bench, deadly: str):
        super().__init__(bench)
        self.deadly = deadly

    def evaluate(self, arch, hparams=None, fidelity=None, seed=None):
        if self.space.key(arch) == self.deadly:
            os._exit(9)
        return super().evaluate(arch, hparams, fidelity, seed)


@pytest.mark.slow
def test_a_study_whose_worker_dies_on_a_cell_fails_alone(ray_session, graph, tmp_path, monkeypatch):
    """Tune restarts the study from its checkpoint (MAX_FAILURES times), it dies on the same cell
    again, and it is recorded as failed with its checkpointed rows; the other study is unaffected."""
    import ray.cloudpickle

    budget = 40
    _, doomed = run_study(StudySpec("random", 0, "val_accuracy", "max", budget), graph)
    _, other = run_study(StudySpec("evolution", 0, "val_accuracy", "max", budget), graph)
    deadly = next(r["key"] for r in doomed.rows[25:] if r["key"] not in {o["key"] for o in other.rows})
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr(_compare, "TabularEvaluator", lambda bench: CrashingEvaluator(bench, deadly))
    cfg = CompareConfig(benchmark="nasbench_graph", dataset="cora", methods=["evolution", "random"], seeds=1,
                        budget=budget, checkpoint_every=10, metric="val_accuracy")
    rows = pq.read_table(compare(cfg, tmp_path / "cmp", progress=False)).to_pylist()
    assert [r["config"] for r in rows if r["method"] == "evolution"] == [r["config"] for r in other.rows]
    lost = [r for r in rows if r["method"] == "random"]
    cut = [r["key"] for r in doomed.rows].index(deadly) // 10 * 10  # its last checkpoint before the cell
    assert [r["config"] for r in lost[:-1]] == [r["config"] for r in doomed.rows[:cut]]
    assert lost[-1]["query"] == cut and lost[-1]["error"].startswith("study failed: ")
    studies = json.loads((tmp_path / "cmp" / "studies.json").read_text())
    assert studies["evolution_seed0"]["complete"] and not studies["random_seed0"]["complete"]
    assert studies["random_seed0"]["queries"] == cut
    assert (tmp_path / "cmp" / "summary.md").exists()
