"""The `raynas` command line: listings, data commands and clear errors."""

from __future__ import annotations

import json
import re
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
    assert "evolution" in res.output and "population_size  int = 10" in res.output
    assert "tpe" in res.output
    assert "= None" not in res.output and "config" not in res.output.split("\n\n", 1)[1]


def test_every_searcher_option_has_a_description_a_type_and_its_paper_value_where_one_exists(cli):
    from raynas.searchers import (
        searcher_names,
        searcher_option_help,
        searcher_option_types,
        searcher_options,
    )

    for name in searcher_names():
        res = cli("searchers", name)
        assert res.exit_code == 0 and res.output.count("\n") > 2
        helps, types = searcher_option_help(name), searcher_option_types(name)
        for option in searcher_options(name):
            text, paper = helps[option]
            assert text and "\n" not in text, (name, option)
            line = next(li for li in res.output.splitlines() if li.strip().startswith(f"{option} "))
            assert f"{types[option]} = " in line and line.rstrip().endswith(text)
            if paper:
                assert f"paper: {paper}" in res.output
    dnas = cli("searchers", "dnas").output
    assert "paper: 0.8 (Zheng et al.)" in dnas and re.search(r"latent_size +int or null = null +latent dim", dnas)
    assert "evolution" not in dnas


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


def test_demo_writes_a_small_report_with_short_folder_names(cli, ray_session, tmp_path):
    import pyarrow.parquet as pq

    from raynas.cli import DEMO_METHODS

    out = tmp_path / "demo"
    res = cli("demo", "--out", out, "--seeds", 2, "--budget", 12, "--quiet")
    assert res.exit_code == 0, res.output
    assert "nasbench_graph / arxiv" in res.output and "What you are looking at" in res.output
    table = pq.read_table(out / "results.parquet").to_pydict()
    for method in DEMO_METHODS:
        for seed in (0, 1):
            queries = sorted(q for m, s, q in zip(table["method"], table["seed"], table["query"])
                             if m == method and s == seed)
            assert queries == list(range(12)), method
        assert f"| {method} |" in res.output
    assert not any(table["error"])
    for name in ("curves.png", "final.png", "report.md", "report.html", "summary.md", "summary.csv"):
        assert (out / name).stat().st_size > 0, name
    trial_dirs = [p.name for p in (out / "tune").iterdir() if p.is_dir()]
    assert sorted(trial_dirs) == sorted(f"{m}_seed{s}" for m in DEMO_METHODS for s in (0, 1))
    assert sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) < 2_000_000


@pytest.mark.slow
def test_the_default_demo_shows_a_significant_difference(cli, ray_session, tmp_path):
    import time

    start = time.perf_counter()
    res = cli("demo", "--out", tmp_path / "demo", "--quiet")
    assert res.exit_code == 0, res.output
    # 20 seeds x 50 queries on ogbn-arxiv: random search is worse than local search beyond chance
    assert re.search(r"\| random \| 20 vs 20 \| -0\.\d+ \| [\d.]+ \| < 0\.001 \| worse \(p < 0\.05\) \|", res.output)
    assert "the classic method with the best mean final" in res.output and "| local | 20 |" in res.output
    assert time.perf_counter() - start < 180  # about 35 s on 2 busy cores


def test_set_parses_searcher_options_as_json():
    from raynas.cli import parse_settings

    got = parse_settings(["dnas.eps_dense=0.05", "dnas.dense_sampling=false", "tpe.n_startup_trials=5"],
                         ["dnas", "tpe"])
    assert got == {"dnas": {"eps_dense": 0.05, "dense_sampling": False}, "tpe": {"n_startup_trials": 5}}


# ---------------------------------------------------------------------------- hostile input (issue 12)
COMPARE = ("compare", "--benchmark", "nasbench_graph", "--methods", "random", "--seeds", 1, "--budget", 10, "--quiet")


@pytest.fixture
def searches(monkeypatch):
    """``compare`` up to the search itself: each run is recorded as (config, restore) instead of started."""
    runs = []

    def record(config, out, restore, progress, verbose, bench=None, root=None):
        runs.append((config, restore))
        (out / "summary.md").write_text("(no search in this test)\n")
        return out / "results.parquet"

    monkeypatch.setattr("raynas.runner._compare._run", record)
    return runs


@pytest.mark.parametrize(
    "bad,match",
    [
        (["--metric", "nope"], "unknown metric of nasbench_graph 'nope'"),
        (["--dataset", "nope"], "unknown dataset of nasbench_graph 'nope'"),
        (["--data", "/nonexistent/graph.json"], "does not exist"),
        (["--set", "random.x=1"], "random has no option 'x'"),
    ],
)
def test_a_failed_start_leaves_nothing_and_the_retry_runs(searches, tmp_path, bad, match):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, [str(a) for a in (*COMPARE, *bad, "--out", out)])
    assert res.exit_code == 2 and match in res.output and "Traceback" not in res.output
    assert not out.exists()
    res = CliRunner().invoke(main, [str(a) for a in (*COMPARE, "--out", out)])
    assert res.exit_code == 0, res.output
    assert [restore for _, restore in searches] == [False]


def test_a_benchmark_file_that_does_not_load_leaves_nothing(searches, tmp_path):
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"\x00\x01 not parquet")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["compare", "--benchmark", "custom", "--data", str(junk), "--methods", "random",
                                    "--out", str(out)])
    assert res.exit_code == 2 and "not a readable Parquet file" in res.output
    assert not out.exists() and searches == []


def test_resume_with_other_arguments_names_the_differences(cli, searches, tmp_path):
    out = tmp_path / "out"
    assert cli(*COMPARE, "--out", out).exit_code == 0
    definition = (out / "experiment.json").read_text()
    res = CliRunner().invoke(main, [str(a) for a in (*COMPARE, "--out", out, "--resume", "--budget", 20,
                                                     "--methods", "random,tpe")])
    assert res.exit_code == 2
    assert "holds an experiment with methods=random, budget=10; you asked methods=random,tpe, budget=20" in res.output
    assert "use another --out or the same arguments" in res.output
    res = CliRunner().invoke(main, [str(a) for a in (*COMPARE, "--out", out, "--budget", 20)])
    assert res.exit_code == 2 and "budget=10; you asked budget=20" in res.output
    assert (out / "experiment.json").read_text() == definition and len(searches) == 1
    assert cli(*COMPARE, "--out", out, "--resume").exit_code == 0  # the same arguments continue it
    assert [restore for _, restore in searches] == [False, True]


def test_demo_with_other_arguments_is_refused(cli, searches, tmp_path):
    out = tmp_path / "demo"
    assert cli("demo", "--out", out, "--seeds", 1, "--budget", 5, "--quiet").exit_code == 0
    res = CliRunner().invoke(main, ["demo", "--out", str(out), "--seeds", "2", "--budget", "5", "--quiet"])
    assert res.exit_code == 2
    assert "holds an experiment with seeds=1; you asked seeds=2" in res.output
    assert "continuing" not in res.output and len(searches) == 1
    res = cli("demo", "--out", out, "--seeds", 1, "--budget", 5, "--quiet")
    assert res.exit_code == 0 and "continuing it" in res.output and searches[-1][1] is True


def test_train_run_resume_with_other_arguments_is_refused(tmp_path):
    from dataclasses import asdict, replace

    from raynas.runner._compare import ExperimentExistsError
    from raynas.runner._train_run import KIND, TrainRunConfig, run_train

    cfg = TrainRunConfig(space="nasbench201", methods=["random"], budget=10)
    (tmp_path / "experiment.json").write_text(json.dumps({"kind": KIND, **asdict(cfg)}))
    with pytest.raises(ExperimentExistsError, match="with budget=10, epochs=12; you asked budget=3, epochs=2"):
        run_train(replace(cfg, budget=3, epochs=2), tmp_path, resume=True)


_BAD_OUT = [
    ("afile", "--out afile is a file, not a folder; choose another --out"),
    ("afile/sub", "lies under"),
    ("nosuch://bucket/x", "nosuch://bucket/x: not a storage URI pyarrow can open (Unrecognized filesystem"),
]


@pytest.mark.parametrize(
    "command,out,match",
    [*(("compare", o, m) for o, m in _BAD_OUT), *(("demo", o, m) for o, m in _BAD_OUT[:2]),
     ("demo", "s3://bucket/x", "s3://bucket/x: this --out must be a local or mounted folder (experiments take")],
)
def test_out_must_be_a_local_folder(searches, tmp_path, monkeypatch, command, out, match):
    """Checked before anything is written. Storage URIs are for experiments (tests/test_storage.py
    runs them against a local S3 server); the demo writes a local folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("keep me")
    args = [*COMPARE, "--out", out] if command == "compare" else ["demo", "--out", out, "--quiet"]
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 2 and match in res.output and "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing written, no folder 's3:'
    assert (tmp_path / "afile").read_text() == "keep me" and searches == []


def test_an_unwritable_out_is_one_clear_line(searches, tmp_path, monkeypatch):
    import pathlib

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "mkdir", refuse)
    res = CliRunner().invoke(main, [str(a) for a in (*COMPARE, "--out", tmp_path / "out")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"cannot write {tmp_path / 'out' / 'experiment.json'}: Permission denied; choose another --out" in res.output


@pytest.mark.parametrize(
    "out,match",
    [
        ("afile/x.parquet", "lies under"),
        ("folder", "is a folder; give a file name"),
        ("s3://bucket/x.parquet", "s3://bucket/x.parquet: this --out must be a local or mounted folder"),
    ],
)
def test_data_commands_check_out(tmp_path, monkeypatch, out, match):
    from conftest import DATA

    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("keep me")
    (tmp_path / "folder").mkdir()
    csv = tmp_path / "mine.csv"
    csv.write_text("arch,acc\n02012100,90.5\n")
    for args in (["data", "import", csv, "--space", "nasbench_macro", "--arch-column", "arch",
                  "--metric", "val_accuracy=acc", "--out", out],
                 ["data", "convert", "nasbench_macro", DATA / "macro_excerpt.json", "--out", out]):
        res = CliRunner().invoke(main, [str(a) for a in args])
        assert res.exit_code == 2 and match in res.output and "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "folder", "mine.csv"]
    assert list((tmp_path / "folder").iterdir()) == []


def test_report_and_resume_want_an_experiment_folder(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "experiment.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "todo").mkdir()
    (tmp_path / "todo" / "experiment.json").write_text(
        json.dumps({"kind": "compare", "benchmark": "nasbench_graph", "methods": ["random"], "seeds": 1, "budget": 5}))
    for command in ("report", "resume"):
        res = CliRunner().invoke(main, [command, str(tmp_path)])
        assert res.exit_code == 2 and "Traceback" not in res.output
        assert "is not a raynas experiment folder (it has no experiment.json)" in res.output
        res = CliRunner().invoke(main, [command, str(tmp_path / "bad")])
        assert res.exit_code == 2 and "is not a raynas experiment definition" in res.output
        assert "PNG" not in res.output and "\\x" not in res.output
    res = CliRunner().invoke(main, ["report", str(tmp_path / "todo")])
    assert res.exit_code == 2 and "holds an experiment without results yet; `raynas resume" in res.output


def _import(csv, out):
    return CliRunner().invoke(main, ["data", "import", str(csv), "--space", "nasbench_macro", "--arch-column", "arch",
                                     "--metric", "val_accuracy=acc", "--out", str(out)])


def test_import_names_the_row_and_column_of_a_value_that_is_not_a_number(tmp_path):
    rows = [f"{i:08d}".translate(str.maketrans("3456789", "0120120")) for i in range(17)]
    csv = tmp_path / "mine.csv"
    csv.write_text("arch,acc\n" + "".join(f"{a},{90 + i / 10}\n" for i, a in enumerate(rows[:16])) + f"{rows[16]},n/a\n")
    res = _import(csv, tmp_path / "mine.parquet")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "mine.csv: row 17, column acc: 'n/a' is not a number" in res.output
    assert not (tmp_path / "mine.parquet").exists()


def test_import_of_a_header_without_rows_says_so(tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text("arch,acc\n")
    res = _import(csv, tmp_path / "mine.parquet")
    assert res.exit_code == 2 and "mine.csv: the file has no rows, only a header" in res.output
    assert not (tmp_path / "mine.parquet").exists()


JUNK = bytes(range(1, 32)) * 8 + b"\x1b[2J\x1b]0;pwned\x07" + bytes(range(128, 256)) * 4


@pytest.mark.parametrize("content", [JUNK[::-1], b"arch,acc\n" + JUNK, b"arch," + JUNK + b"\n1,2\n"])
def test_junk_files_are_never_echoed(tmp_path, content):
    junk = tmp_path / "junk.csv"
    junk.write_bytes(content)
    for args in (["data", "import", junk, "--space", "nasbench_macro", "--arch-column", "arch",
                  "--metric", "val_accuracy=acc", "--out", tmp_path / "x.parquet"],
                 ["data", "info", "nasbench201", "--data", junk]):
        res = CliRunner().invoke(main, [str(a) for a in args])
        assert res.exit_code == 2 and "junk.csv" in res.output and "Traceback" not in res.output
        assert res.output.isascii() and res.output.rstrip("\n").isprintable()
        assert len(res.output) < 400 and res.output.count("\n") == 1


def test_set_values_are_checked_against_their_field_type_before_anything_starts(tmp_path):
    from raynas.cli import parse_settings

    # Python's spellings are what `raynas searchers` shows (multivariate = False), so they are accepted too
    assert parse_settings(["tpe.multivariate=False", "dnas.latent_size=None", "dnas.dense_sampling=True"],
                          ["tpe", "dnas"]) == {"tpe": {"multivariate": False},
                                               "dnas": {"latent_size": None, "dense_sampling": True}}
    for setting, message in [
        ("dnas.eps_dense=lots", "option eps_dense of dnas must be of type float, got 'lots'"),
        ("dnas.top_k=3.5", "option top_k of dnas must be of type int, got 3.5"),
        ("tpe.multivariate=1", "option multivariate of tpe must be of type bool, got 1"),
        ("dnas.latent_size=none", "option latent_size of dnas must be of type int or null, got 'none'"),
    ]:
        res = CliRunner().invoke(main, ["compare", "--benchmark", "nasbench_graph", "--methods", "dnas,tpe",
                                        "--set", setting, "--out", str(tmp_path / "out")])
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
        assert not (tmp_path / "out").exists()


def test_tuple_options_take_json_lists_checked_item_by_item():
    import dataclasses

    from raynas.searchers import OptionError
    from raynas.searchers._config import build_config

    @dataclasses.dataclass(frozen=True)
    class Widths:
        widths: tuple[int, ...] = (8, 16)
        box: tuple[float, float] | None = None

    assert build_config(Widths, "net", {"widths": [4, 8, 12], "box": [0, 1]}) == Widths((4, 8, 12), (0.0, 1.0))
    with pytest.raises(OptionError, match=r"widths of net must be of type tuple of int, got \[4, 'x'\]"):
        build_config(Widths, "net", {"widths": [4, "x"]})
    with pytest.raises(OptionError, match=r"box of net must be of type tuple of \(float, float\) or null, got \[1\]"):
        build_config(Widths, "net", {"box": [1]})


def _commands(group, path=()):
    import click

    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


def test_every_command_help_ends_with_an_example_and_every_option_is_described(cli):
    import click

    for path, cmd in [((), main), *_commands(main)]:
        res = cli(*path, "--help")
        assert res.exit_code == 0
        tail = res.output.rstrip().split("\n\n")[-1].lstrip()
        assert tail.startswith(("Example:", "Examples:")), (path, tail)
        assert f"raynas {' '.join(path)}".rstrip() in tail, path
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert param.help, (path, param.name)
    top = cli("--help").output
    assert "raynas demo" in top and "Start with `raynas demo`" in top
    helps = {p.name: p.help for p in main.commands["compare"].params}
    for option in ("max_flops", "max_params", "max_latency"):
        assert "in the table's unit" in helps[option] and "e.g." in helps[option]
    assert "Dataset of the benchmark" in helps["dataset"]


def test_spaces_explain_their_columns(cli):
    out = cli("spaces").output
    assert "encodings: architectures the space can write down" in out
    assert "cells: distinct ones up to isomorphism" in out and "seq:" in out and "vocab:" in out


# ---------------------------------------------------------------------------- the harness (issue 15)
@pytest.fixture
def harness(monkeypatch):
    import importlib
    import importlib.util
    import sys
    from pathlib import Path

    bench_dir = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench_dir))
    for name in ("_common", "_harness"):
        sys.modules.pop(name, None)
    spec = importlib.util.spec_from_file_location("_harness_main", bench_dir / "__main__.py")
    main_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main_mod)
    return importlib.import_module("_harness"), main_mod


def test_harness_figures_stand_beside_their_peers_and_the_readme_block_is_regenerated(harness, tmp_path):
    _harness, main_mod = harness
    figures = _harness.queries(quick=True)
    assert [f.section for f in figures] == ["lookups", "lookups"] and all(f.value > 1000 for f in figures)
    fig = _harness.Figure("search speed", "random, 10 queries", 300.0, "queries/s", "Optuna RandomSampler", 100.0)
    data = {"date": "2026-12-02", "host": "box", "load_average_at_start": [1.5, 1, 1], "total_s": 12.0,
            "settings": {"quick": True}, "failed": {"tune": "RuntimeError: x"},
            "machine": {"cpu": "Some CPU", "cores": 2, "python": "3.11", "torch": "2", "ray": "2.6", "optuna": "4"},
            "figures": [fig.to_dict(), figures[0].to_dict()]}
    assert fig.ratio == 3.0
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Performance\n\nOlder text stays.\n")
    results = tmp_path / "2026-12-02-box.json"
    results.write_text(json.dumps(data))
    main_mod.update_readme(results, readme)
    text = readme.read_text()
    assert "host `box`: Some CPU, 2 cores" in text and "Older text stays." in text
    assert "| search speed | random, 10 queries | 300.0 queries/s | Optuna RandomSampler | 100.0 queries/s | 3.00 |" in text
    assert "Not measured in this run: tune (RuntimeError: x)" in text
    data["host"] = "other"
    results.write_text(json.dumps(data))
    main_mod.update_readme(results, readme)  # the block is replaced, not added twice
    text = readme.read_text()
    assert text.count(main_mod.BEGIN) == 1 and "host `other`" in text and "host `box`" not in text
    assert "ratio raynas/peer" in main_mod.table(data)


def test_bench_runs_the_harness_of_the_checkout(cli, monkeypatch):
    calls = []
    monkeypatch.setattr("subprocess.call", lambda args, cwd: calls.append((args, cwd)) or 0)
    res = CliRunner().invoke(main, ["bench", "--quick", "--only", "queries"])
    assert res.exit_code == 0, res.output
    args, cwd = calls[0]
    assert args[1:] == ["-m", "benchmarks", "--quick", "--only", "queries"] and (cwd / "benchmarks").is_dir()


def test_a_small_constrained_compare_writes_every_figure_and_both_reports(cli, ray_session, tmp_path):
    import base64
    import re

    out = tmp_path / "cmp"
    res = cli("compare", "--benchmark", "nasbench_graph", "--methods", "random,evolution", "--seeds", 2,
              "--budget", 10, "--max-params", 0.8, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    figures = ["curves.png", "final.png", "cost_params.png"]
    html = (out / "report.html").read_text()
    embedded = [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([^"]*)"', html)]
    assert embedded == [(out / f).read_bytes() for f in figures]
    md = (out / "report.md").read_text()
    assert all(f"]({f})" in md for f in figures) and "limit params <= 0.8" in md
    assert "report.html (self-contained)" in res.output


@pytest.mark.slow
def test_report_explain_adds_the_best_dnas_studys_figures(cli, ray_session, tmp_path):
    out = tmp_path / "cmp"
    assert cli("compare", "--benchmark", "nasbench_graph", "--methods", "dnas,random", "--seeds", 1, "--budget", 22,
               "--out", out, "--quiet").exit_code == 0
    assert "`raynas explain" in (out / "report.md").read_text()  # says how to get the figures
    res = cli("report", out, "--explain")
    assert res.exit_code == 0, res.output
    md = (out / "report.md").read_text()
    assert "## DNAS controller explained" in md and "](explain/dnas_seed0/traversals.png)" in md
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 4  # curves, final, 2 explain figures
