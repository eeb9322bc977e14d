"""Experiments on shared storage: ``--out s3://...`` against a local S3 server (moto).

moto's S3 server runs in a thread of this process; Ray's workers reach it over HTTP like any S3
endpoint. The credentials are moto's dummies, carried in the URI, so that every process (the
CLI, Ray's workers) has them without touching the environment.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from conftest import kill_driver_then_its_ray

from raynas._errors import OutputFolderError
from raynas._state import dump_state, load_state
from raynas._storage import RemotePath, as_path, is_uri, shown
from raynas.runner import _study
from raynas.runner._compare import CompareConfig, compare, resume
from raynas.runner._study import StudySpec, run_study

BUCKET = "raynas-test"


@pytest.fixture(scope="module")
def s3():
    """A function ``name -> s3 URI`` of a folder in a fresh bucket of a local S3 server."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # never wait on an instance profile
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    query = f"endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    fs, _ = pafs.FileSystem.from_uri(f"s3://key:secret@{BUCKET}?{query}&allow_bucket_creation=true")
    fs.create_dir(BUCKET)
    yield lambda name: f"s3://key:secret@{BUCKET}/{name}?{query}"
    server.stop()


def _files(uri: str) -> dict[str, int]:
    root = RemotePath(uri)
    infos = root.fs.get_file_info(pafs.FileSelector(root.path, recursive=True, allow_not_found=True))
    return {i.path[len(root.path) + 1:]: i.size for i in infos if i.type == pafs.FileType.File}


def test_remote_path_acts_as_a_folder(s3):
    root = as_path(s3("paths"))
    assert isinstance(root, RemotePath) and is_uri(s3("paths")) and not is_uri("/tmp/x") and not is_uri(None)
    assert not root.exists() and list(root.iterdir()) == []
    sub = root / "studies" / "a_seed0"
    assert str(sub).startswith(f"s3://key:secret@{BUCKET}/paths/studies/a_seed0?endpoint_override=")
    assert "secret" not in shown(sub) and shown(sub).startswith(f"s3://{BUCKET}/paths/studies/a_seed0?")
    for n in (3, 1, 2):
        (sub / f"checkpoint-{n:06d}.pt").write_bytes(bytes([n]) * n)
    (sub / "notes.txt").write_text("hello")
    assert [p.name for p in sorted(sub.glob("checkpoint-*.pt"))] == [f"checkpoint-{n:06d}.pt" for n in (1, 2, 3)]
    assert (sub / "checkpoint-000003.pt").read_bytes() == b"\x03\x03\x03"
    assert (sub / "checkpoint-000002.pt").stat().st_size == 2 and (sub / "notes.txt").read_text() == "hello"
    moved = (sub / "checkpoint-000003.pt").replace(sub / "checkpoint-000003.pt.unreadable")
    assert moved.exists() and not (sub / "checkpoint-000003.pt").exists()
    (sub / "checkpoint-000001.pt").unlink()
    (sub / "checkpoint-000001.pt").unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError):
        (sub / "checkpoint-000001.pt").unlink()
    with pytest.raises(FileNotFoundError):
        (sub / "nothing").read_bytes()
    sub.rename(root / "aside")  # a folder moves with everything in it (copy and delete on S3)
    assert not sub.exists() and (root / "aside").is_dir()
    assert sorted(_files(s3("paths"))) == ["aside/checkpoint-000002.pt", "aside/checkpoint-000003.pt.unreadable",
                                          "aside/notes.txt"]
    state = {"rows": [(1, "a")], "best": 0.5}
    dump_state(state, root / "state.pt")
    assert load_state(root / "state.pt") == state


def test_cut_checkpoint_on_s3_falls_back_to_the_one_before(s3, graph):
    """The same recovery as on a local folder: the cut file is set aside, the older one is used."""
    folder = as_path(s3("cut")) / "random_seed0"
    spec = StudySpec("random", 0, "val_accuracy", "max", 20, checkpoint_every=10)
    run_study(spec, graph, on_checkpoint=lambda s, st: _study.write_checkpoint(folder, s, st))
    older, newest = _study.checkpoints(folder)
    assert [older.name, newest.name] == ["checkpoint-000010.pt", "checkpoint-000020.pt"]
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    saved, notes = _study.newest_checkpoint(folder)
    assert len(saved["sim"].rows) == 10
    assert len(notes) == 1 and "checkpoint-000020.pt" in notes[0]
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-000010.pt", "checkpoint-000020.pt.unreadable"]


def _config(**kw) -> CompareConfig:
    base = dict(name="s3", benchmark="nasbench_graph", dataset="cora", metric="val_accuracy",
                methods=["random", "evolution"], seeds=2, budget=15)
    return CompareConfig(**{**base, **kw})


def _rows(path: Path) -> list[tuple]:
    table = pq.read_table(path).drop_columns(["experiment"])
    return [tuple(r.values()) for r in table.to_pylist()]


def test_compare_on_s3_equals_local_and_resumes_from_a_fresh_machine(s3, ray_session, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    local = compare(_config(), tmp_path / "local", progress=False)
    remote = compare(_config(), s3("exp"), progress=False)
    assert _rows(remote) == _rows(local)
    files = _files(s3("exp"))
    for name in ("experiment.json", "results.parquet", "summary.md", "summary.csv", "curves.png", "studies.json",
                 "studies/evolution_seed1/searcher.pt", "studies/random_seed0/checkpoint-000015.pt"):
        assert files.get(name, 0) > 0, name
    assert any(f.startswith("tune/experiment_state-") for f in files)  # Tune's own state, via storage_path
    assert not (tmp_path / "s3://key:secret@raynas-test").exists() and not Path("s3:").exists()
    # Another machine: no local copy at all. Every study is finished, so nothing runs again.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "elsewhere"))
    again = resume(s3("exp"), progress=False)
    assert again.is_relative_to(tmp_path / "elsewhere") and _rows(again) == _rows(local)
    # The same arguments again are refused with the URI (without its credentials) in the message.
    with pytest.raises(Exception, match=r"s3://raynas-test/exp\?.*already holds this experiment") as err:
        compare(_config(), s3("exp"), progress=False)
    assert "secret" not in str(err.value)
    with pytest.raises(Exception, match="holds an experiment with seeds=2"):
        compare(_config(seeds=3), s3("exp"), resume=True, progress=False)


def test_unreachable_or_unknown_storage_is_one_clear_error(s3, tmp_path):
    closed = "s3://key:secret@bucket/x?endpoint_override=127.0.0.1:1&scheme=http&region=us-east-1"
    for uri, message in ((closed, "the storage cannot be reached"), ("nosuch://x/y", "not a storage URI")):
        with pytest.raises(OutputFolderError, match=message) as err:
            compare(_config(), uri, progress=False)
        assert "secret" not in str(err.value) and "\n" not in str(err.value)
    (RemotePath(s3("afile"))).write_bytes(b"x")
    with pytest.raises(OutputFolderError, match="is a file, not a folder"):
        compare(_config(), s3("afile"), progress=False)
    (RemotePath(s3("junk")) / "thing.txt").write_text("not an experiment")
    with pytest.raises(Exception, match="exists and is not a raynas experiment"):
        compare(_config(), s3("junk"), progress=False)
    assert _files(s3("junk")) == {"thing.txt": 17}  # nothing was written


@pytest.mark.filterwarnings("ignore:.*holds 400 records")
def test_benchmark_data_from_storage_is_fetched_once(s3, nb201_excerpt, tmp_path, monkeypatch):
    from raynas import benchmarks

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    csv = Path(__file__).parent / "data" / "nb201_excerpt.csv"
    uri = s3("data/nb201_excerpt.csv")
    RemotePath(uri).write_bytes(csv.read_bytes())
    bench = benchmarks.load("nasbench201", path=uri, dataset="cifar10")
    assert len(bench) == len(nb201_excerpt) and len(bench) > 0
    cached = list((tmp_path / "cache" / "raynas" / "data").rglob("nb201_excerpt.csv"))
    assert len(cached) == 1 and cached[0].read_bytes() == csv.read_bytes()
    stamp = cached[0].stat().st_mtime_ns
    benchmarks.load("nasbench201", path=uri, dataset="cifar10")
    assert cached[0].stat().st_mtime_ns == stamp  # reused, not downloaded again
    with pytest.raises(OutputFolderError, match="no such file"):
        benchmarks.load("nasbench201", path=s3("data/missing.csv"), dataset="cifar10")


@pytest.mark.slow
def test_driver_killed_then_resumed_from_s3_gives_the_uninterrupted_results(s3, graph, tmp_path):
    """SIGKILL of a `raynas compare --out s3://...` driver, then `raynas resume` with an empty
    cache (as on another machine): every query once, the same rows as an uninterrupted study."""
    uri, budget = s3("killed"), 120
    env = dict(os.environ, TUNE_GLOBAL_CHECKPOINT_S="0", TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1",
               RAY_AUTH_MODE="disabled", XDG_CACHE_HOME=str(tmp_path / "first"))
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "raynas.cli", "compare", "--benchmark", "nasbench_graph", "--dataset", "cora",
           "--metric", "val_accuracy", "--methods", "tpe,evolution", "--seeds", "2", "--budget", str(budget),
           "--checkpoint-every", "10", "--out", uri, "--quiet"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while (sum(".pt" in f for f in _files(uri)) < 3 and time.time() < deadline and proc.poll() is None):
        time.sleep(0.2)
    assert proc.poll() is None, f"compare ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    kill_driver_then_its_ray(proc)
    assert "results.parquet" not in _files(uri)
    env["XDG_CACHE_HOME"] = str(tmp_path / "second")
    done = subprocess.run([sys.executable, "-m", "raynas.cli", "resume", uri, "--quiet"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "s3://raynas-test/killed" in done.stdout and "secret" not in done.stdout
    rows = pq.read_table(_download(uri, tmp_path)).to_pylist()
    assert len(rows) == 2 * 2 * budget and not any(r["error"] for r in rows)
    for method in ("tpe", "evolution"):
        for seed in (0, 1):
            mine = [r for r in rows if r["method"] == method and r["seed"] == seed]
            assert [r["query"] for r in mine] == list(range(budget))
            _, st = run_study(StudySpec(method, seed, "val_accuracy", "max", budget), graph)
            assert [r["config"] for r in mine] == [r["config"] for r in st.rows]
            assert [r["val_accuracy"] for r in mine] == [r["val_accuracy"] for r in st.rows]


def _download(uri: str, tmp_path: Path) -> Path:
    dest = tmp_path / "results.parquet"
    dest.write_bytes((RemotePath(uri) / "results.parquet").read_bytes())
    return dest


def test_tune_backend_keeps_its_trials_on_s3(s3, ray_session, tmp_path, monkeypatch, caplog):
    """``--backend tune`` (one Tune trial per query): Tune's experiment of each study goes to the URI,
    and a finished one is kept on resume (its searcher state is read as whole, not set aside)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg = _config(methods=["evolution"], seeds=1, budget=6, backend="tune")
    path = compare(cfg, s3("tune"), progress=False)
    rows = pq.read_table(path).to_pylist()
    assert [r["query"] for r in rows] == list(range(6)) and not any(r["error"] for r in rows)
    files = _files(s3("tune"))
    assert files.get("results.parquet", 0) > 0
    assert any(f.startswith("tune/evolution_seed0/experiment_state-") for f in files)
    with caplog.at_level("WARNING", logger="raynas"):
        again = resume(s3("tune"), progress=False)  # finished: kept as it is, not run again
    assert "cannot be resumed exactly" not in caplog.text
    assert pq.read_table(again).to_pylist() == rows  # the same wall-clock times: nothing ran again
