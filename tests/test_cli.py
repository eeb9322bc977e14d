"""The `raynas` command line: listings, data commands and clear errors."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from raynas.cli import main


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_spaces_lists_every_space(cli):
    res = cli("spaces")
    assert res.exit_code == 0
    for name in ("nasbench101", "nasbench201", "nasbench_macro", "nasbench_graph", "darts"):
        assert name in res.output
    assert "15,625" in res.output and "6,466" in res.output


def test_benchmarks_say_where_data_is(cli, tmp_path, monkeypatch):
    from conftest import NB201_EXCERPT

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("RAYNAS_DATA", raising=False)
    folder = tmp_path / "data"
    (folder / "nasbench201").mkdir(parents=True)
    csv = folder / "nasbench201" / "nats_bench.csv"  # found one level down, as in ../shared/data
    shutil.copy(NB201_EXCERPT, csv)
    res = cli("benchmarks", "--data", folder)
    assert res.exit_code == 0
    assert str(csv) in res.output
    assert "nasbench_macro" in res.output and "NOT FOUND" in res.output
    assert "embedded" in res.output
    # a converted Parquet file in the user data folder is found without --data, and preferred
    dest = tmp_path / "xdg" / "raynas" / "nasbench201_cifar10.parquet"
    assert cli("data", "convert", "nasbench201", csv).exit_code == 0 and dest.is_file()
    res = cli("benchmarks")
    assert str(dest) in res.output and str(csv) not in res.output


def test_searchers_list_options(cli):
    res = cli("searchers")
    assert "evolution" in res.output and "population_size = 10" in res.output
    assert "tpe" in res.output


def test_data_convert_and_info(cli, macro_excerpt, tmp_path):
    dest = tmp_path / "m.parquet"
    res = cli("data", "convert", "nasbench_macro", macro_excerpt.source, "--out", dest)
    assert res.exit_code == 0 and "400 cells" in res.output
    info = json.loads(cli("data", "info", dest).output)
    assert info["cells"] == 400 and info["partial"] is True
    # the excerpt keeps the 30 best cells, so its optimum is the benchmark's (22212220)
    assert info["optimum test_accuracy"] == pytest.approx(93.1267, abs=1e-3)
    assert info["optimum test_accuracy"] == pytest.approx(macro_excerpt.optimum("test_accuracy"))


def test_data_import(cli, tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text("arch,acc\n02012100,90.5\n22212220,93.0\n")
    dest = tmp_path / "mine.parquet"
    res = cli("data", "import", csv, "--space", "nasbench_macro", "--arch-column", "arch",
              "--metric", "val_accuracy=acc", "--out", dest)
    assert res.exit_code == 0, res.output
    info = json.loads(cli("data", "info", "custom", "--data", dest).output)
    assert info["cells"] == 2 and info["partial"] is True


@pytest.mark.parametrize(
    "args,match",
    [
        (["compare", "--benchmark", "nasbench201", "--methods", "random", "--budget", "0", "--out", "X"],
         "budget must be a positive number"),
        (["compare", "--benchmark", "nasbench201", "--methods", "nope", "--out", "X"],
         "unknown method 'nope'"),
        (["compare", "--benchmark", "nb", "--methods", "random", "--out", "X"], "unknown benchmark 'nb'"),
        (["data", "info", "nasbench_macro", "--data", "/nonexistent/file.json"], "does not exist"),
        (["compare", "--benchmark", "nasbench201", "--methods", "dnas", "--set", "dnas.eps=0.1", "--out", "X"],
         "dnas has no option 'eps'"),
        (["compare", "--benchmark", "nasbench201", "--methods", "dnas", "--set", "nao.top_p=5", "--out", "X"],
         "names 'nao', which is not among the methods run"),
        (["compare", "--benchmark", "nasbench201", "--methods", "dnas", "--set", "eps_dense=1", "--out", "X"],
         "is not METHOD.OPTION=VALUE"),
    ],
)
def test_errors_are_one_clear_line(args, match, tmp_path):
    runner = CliRunner()
    args = [str(tmp_path / "out") if a == "X" else a for a in args]
    res = runner.invoke(main, args)
    assert res.exit_code == 2
    assert match in res.output
    assert "Traceback" not in res.output


def test_convert_nasbench101_then_load_by_name(cli, tmp_path, monkeypatch):
    from conftest import DATA

    src = DATA / "nb101_excerpt.tfrecord"  # official tfrecord format, 8 cells (tests/data/README.md)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("RAYNAS_DATA", raising=False)
    res = cli("data", "convert", "nasbench101", src)
    assert res.exit_code == 0 and "8 cells" in res.output
    assert (tmp_path / "raynas" / "nasbench101.parquet").is_file()
    info = json.loads(cli("data", "info", "nasbench101").output)
    assert info["cells"] == 8 and info["fidelities"] == [4, 12, 36, 108] and info["runs"] == 3
    assert info["source"].endswith("nasbench101.parquet")


def test_demo_compares_dnas_with_the_baselines(cli, ray_session, tmp_path):
    import pyarrow.parquet as pq

    from raynas.cli import DEMO_METHODS

    out = tmp_path / "demo"
    res = cli("demo", "--out", out, "--seeds", 1, "--budget", 22, "--quiet")
    assert res.exit_code == 0, res.output
    assert "nasbench_graph / cora" in res.output
    table = pq.read_table(out / "results.parquet").to_pydict()
    for method in DEMO_METHODS:
        queries = sorted(q for m, q in zip(table["method"], table["query"]) if m == method)
        assert queries == list(range(22)), method
        assert f"| {method} |" in res.output
    assert not any(table["error"])
    assert (out / "curves.png").stat().st_size > 0


def test_set_parses_searcher_options_as_json():
    from raynas.cli import parse_settings

    got = parse_settings(["dnas.eps_dense=0.05", "dnas.dense_sampling=false", "tpe.n_startup_trials=5"],
                         ["dnas", "tpe"])
    assert got == {"dnas": {"eps_dense": 0.05, "dense_sampling": False}, "tpe": {"n_startup_trials": 5}}
