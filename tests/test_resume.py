"""`raynas resume` after the driver of `raynas compare` was killed with SIGKILL.

Runs on the embedded NAS-Bench-Graph table (Cora): no outside data file is needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import kill_driver_then_its_ray

from raynas.runner._study import StudySpec, run_study

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(TUNE_GLOBAL_CHECKPOINT_S="0", TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1", RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    return env


def _checkpoints(out: Path) -> int:
    return len(list(out.glob("studies/*/checkpoint-*.pt")))


def test_resume_after_sigkill_equals_uninterrupted_run(graph, tmp_path):
    out = tmp_path / "exp"
    budget = 150
    cmd = [sys.executable, "-m", "raynas.cli", "compare", "--benchmark", "nasbench_graph", "--dataset", "cora",
           "--metric", "val_accuracy", "--methods", "tpe,evolution",
           "--seeds", "2", "--budget", str(budget), "--checkpoint-every", "10", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=_env(),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while _checkpoints(out) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, f"compare ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    kill_driver_then_its_ray(proc)
    assert not (out / "results.parquet").exists()
    done = subprocess.run([sys.executable, "-m", "raynas.cli", "resume", str(out), "--quiet"],
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert len(rows) == 2 * 2 * budget
    assert not any(r["error"] for r in rows)
    for method in ("tpe", "evolution"):
        for seed in (0, 1):
            mine = [r for r in rows if r["method"] == method and r["seed"] == seed]
            assert [r["query"] for r in mine] == list(range(budget))  # none lost, none duplicated
            _, st = run_study(StudySpec(method, seed, "val_accuracy", "max", budget), graph)
            assert [r["config"] for r in mine] == [r["config"] for r in st.rows]
            assert [r["time"] for r in mine] == [r["time"] for r in st.rows]
            assert [r["val_accuracy"] for r in mine] == [r["val_accuracy"] for r in st.rows]


def test_training_search_resumes_after_sigkill_with_the_same_results(tmp_path):
    """`raynas run --trainable train`, killed mid-search, then `raynas resume`: the results equal an
    uninterrupted run's (CPU training is a function of the seed, a trial restarts from its last
    epoch checkpoint, and the searcher from its saved state)."""
    args = ["run", "--trainable", "train", "--space", "nasbench201", "--dataset", "digits", "--image-size", "8",
            "--network", "channels=4", "--network", "cells_per_stage=1", "--method", "evolution",
            "--set", "evolution.population_size=3", "--set", "evolution.sample_size=2",
            "--budget", "6", "--epochs", "3", "--batch-size", "64", "--lr", "0.05", "--quiet"]
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    proc = subprocess.Popen([sys.executable, "-m", "raynas.cli", *args, "--out", str(killed)], env=_env(),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while len(list(killed.glob("tune/*/*/checkpoint_*"))) < 7 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    kill_driver_then_its_ray(proc)
    assert not (killed / "results.parquet").exists()
    shutil.copytree(killed, tmp_path / "as-killed")  # for a post-mortem if resuming fails
    done = subprocess.run([sys.executable, "-m", "raynas.cli", "resume", str(killed), "--quiet"],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ref = subprocess.run([sys.executable, "-m", "raynas.cli", *args, "--out", str(straight)],
                         env=_env(), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    got, want = (pq.read_table(d / "results.parquet").to_pylist() for d in (killed, straight))
    assert len(got) == 6 and not any(r["error"] for r in got)
    assert len({r["key"] for r in got}) == 6
    for column in ("key", "config", "val_accuracy", "train_loss", "test_accuracy", "epoch", "incumbent"):
        assert [r[column] for r in got] == [r[column] for r in want], column


def test_a_study_whose_tune_state_was_cut_by_a_kill_starts_again(tmp_path, monkeypatch):
    """Tune writes its experiment and searcher state in place; a kill mid-write leaves them empty,
    and Tuner.restore would then go on without the lost trials (seen: 1 row of 6 under load)."""
    from ray import tune

    from raynas.runner._tune_run import can_resume

    monkeypatch.setattr(tune.Tuner, "can_restore", staticmethod(lambda path: True))
    good = tmp_path / "tune" / "evolution-seed0"
    good.mkdir(parents=True)
    (good / "experiment_state-2026-12-02_07-17-39.json").write_text('{"trial_data": []}')
    (good / "searcher-state-2026-12-02_07-17-39.pkl").write_bytes(b"\x80\x04N.")
    assert can_resume(good) and good.is_dir()
    for name, text in (("experiment_state-2026-12-02_07-17-40.json", ""),  # the newest one is cut
                       ("experiment_state-2026-12-02_07-17-40.json", '{"trial_da')):
        bad = tmp_path / "tune" / f"tpe-seed{len(text)}"
        bad.mkdir()
        (bad / name).write_text(text)
        assert not can_resume(bad)
        assert not bad.exists()  # moved aside, not deleted
        (aside,) = (tmp_path / "tune").glob(f"{bad.name}.incomplete-*")
        assert (aside / name).read_text() == text
    empty_searcher = tmp_path / "tune" / "random-seed0"
    empty_searcher.mkdir()
    (empty_searcher / "experiment_state-2026-12-02_07-17-39.json").write_text("{}")
    (empty_searcher / "searcher-state-2026-12-02_07-17-39.pkl").write_bytes(b"")
    assert not can_resume(empty_searcher) and not empty_searcher.exists()
