"""`raynas resume` when a study's checkpoint is unreadable or Tune's experiment state lags the studies.

One small comparison runs once; each test resumes a copy of it after an injected fault and counts
the evaluations the resumed run makes (every study is deterministic, so the rows alone cannot tell
a study that was redone from one that was picked up).
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from raynas.runner import _compare
from raynas.runner._compare import CompareConfig, compare, resume
from raynas.runner._study import StudySpec
from raynas.trainables.evaluator import TabularEvaluator

BUDGET = 30
CONFIG = dict(benchmark="nasbench_graph", dataset="cora", methods=["evolution", "random"], seeds=1,
              budget=BUDGET, checkpoint_every=10, metric="val_accuracy")


class CountingEvaluator(TabularEvaluator):
    """A table lookup that also appends each evaluated cell to a file (from any Ray worker)."""

    def __init__(self, bench, log: str):
        super().__init__(bench)
        self.log = log

    def evaluate(self, arch, fidelity=None):
        with open(self.log, "a") as fh:
            fh.write(f"{self.space.key(arch)}\n")
        return super().evaluate(arch, fidelity=fidelity)


@pytest.fixture(scope="module")
def finished(ray_session, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("recovery") / "cmp"
    compare(CompareConfig(**CONFIG), out, progress=False)
    return out


@pytest.fixture
def resumed(finished, tmp_path, monkeypatch):
    """``resumed(edit)``: copy the finished run, apply ``edit(out)``, resume; the evaluations made."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    log = tmp_path / "evaluations.txt"
    monkeypatch.setattr(_compare, "TabularEvaluator", lambda bench: CountingEvaluator(bench, str(log)))

    def run(edit) -> int:
        out = tmp_path / "cmp"
        shutil.copytree(finished, out)
        (out / "results.parquet").unlink()
        edit(out)
        log.write_text("")
        resume(out, progress=False)
        return len(log.read_text().splitlines())

    return run


def _rows(out: Path) -> list[dict]:
    return pq.read_table(out / "results.parquet").to_pylist()


def _as_if_tune_lagged(out: Path, study: str) -> None:
    """Tune's newest experiment state as if saved before ``study`` reported anything: PENDING, no result."""
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.tune.experiment import Trial
    from ray.tune.trainable.metadata import _TrainingRunMetadata

    path = max((out / "tune").glob("experiment_state-*.json"))
    data = json.loads(path.read_text())
    for entry in data["trial_data"]:
        trial = Trial.from_json_state(entry[0])
        trial.restore_run_metadata(entry[1])
        if StudySpec(**trial.config["study"]).name == study:
            trial.set_status(Trial.PENDING)
            config = trial.run_metadata.checkpoint_manager.checkpoint_config
            trial.run_metadata = _TrainingRunMetadata()
            trial.run_metadata.checkpoint_manager = _CheckpointManager(checkpoint_config=config)
            trial.storage.current_checkpoint_index = 0
            entry[:] = trial.get_json_state()
    path.write_text(json.dumps(data))


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _checkpoints(out: Path, study: str) -> list[Path]:
    return sorted((out / "studies" / study).glob("checkpoint-*.pt"))


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_study_tune_recorded_as_pending_goes_on_from_its_own_checkpoint(finished, resumed, tmp_path):
    """Tune saves its experiment state only now and then: after a kill it can hold a study as
    PENDING (no result, no checkpoint) that had already checkpointed; it must not start from zero."""
    evaluations = resumed(lambda out: _as_if_tune_lagged(out, "evolution_seed0"))
    assert evaluations == 0  # the study had finished; it is reported again, not redone
    assert _rows(tmp_path / "cmp") == _rows(finished)


@pytest.mark.parametrize("fault", ["cut newest", "crafted newest", "cut both"])
def test_an_unreadable_checkpoint_falls_back_to_the_one_before(finished, resumed, tmp_path, fault, caplog):
    marker = tmp_path / "marker"

    def edit(out: Path) -> None:
        _as_if_tune_lagged(out, "evolution_seed0")  # the study is resumed, not kept as finished
        older, newest = _checkpoints(out, "evolution_seed0")
        assert (older.name, newest.name) == ("checkpoint-000020.pt", "checkpoint-000030.pt")
        if fault == "crafted newest":
            newest.write_bytes(pickle.dumps({"sim": _Exploit(marker)}))
        else:
            for path in ([newest] if fault == "cut newest" else [older, newest]):
                _cut(path)

    with caplog.at_level(logging.WARNING, logger="raynas"):
        evaluations = resumed(edit)
    out = tmp_path / "cmp"
    assert evaluations == (BUDGET if fault == "cut both" else 10)  # from the seed, or from query 20
    assert _rows(out) == _rows(finished)  # and every study gives the rows of the uninterrupted run
    assert not marker.exists()
    status = json.loads((out / "studies.json").read_text())
    assert all(s["complete"] and s["queries"] == BUDGET for s in status.values())
    note = status["evolution_seed0"]["recovery"]
    assert "checkpoint-000030.pt" in note and ("starts again from its seed" if fault == "cut both" else
                                                "continues from query 20") in note
    assert status["random_seed0"]["recovery"] is None
    assert (out / "studies" / "evolution_seed0" / "checkpoint-000030.pt.unreadable").exists()
    assert any("checkpoint-000030.pt" in r.getMessage() for r in caplog.records)


def test_a_finished_study_whose_checkpoints_are_all_unreadable_costs_only_itself(finished, resumed, tmp_path, caplog):
    """Tune holds the study as finished, so nothing reruns it: its rows are lost, nobody else's are."""

    def edit(out: Path) -> None:
        for path in _checkpoints(out, "random_seed0"):
            _cut(path)

    with caplog.at_level(logging.WARNING, logger="raynas"):
        assert resumed(edit) == 0
    out = tmp_path / "cmp"
    rows = _rows(out)
    assert [r for r in rows if r["method"] == "evolution"] == [r for r in _rows(finished) if r["method"] == "evolution"]
    (lost,) = [r for r in rows if r["method"] == "random"]
    assert "study incomplete: 0 of 30" in lost["error"]
    status = json.loads((out / "studies.json").read_text())
    assert status["evolution_seed0"]["complete"] and not status["random_seed0"]["complete"]
    assert (out / "summary.md").exists()
    assert any("random_seed0" in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records)
