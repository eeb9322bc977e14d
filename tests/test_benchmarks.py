"""Loading every shared file, row counts, optima, queries, partial tables and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raynas import (
    BenchmarkFormatError,
    BenchmarkNotFoundError,
    CellNotTabulatedError,
    InvalidArchitectureError,
    UnknownNameError,
)
from raynas import benchmarks as B
from raynas.benchmarks._import import import_table

NB201_OPTIMA = {"cifar10": 94.3733, "cifar100": 73.5133, "ImageNet16-120": 47.3111}


@pytest.mark.parametrize("dataset", list(NB201_OPTIMA))
def test_nb201_rows_and_optima(nb201_csv, dataset):
    bench = B.load("nasbench201", path=nb201_csv, dataset=dataset)
    assert len(bench) == 6466  # isomorphic cells merged
    assert bench.metrics == ["test_accuracy"]
    assert bench.optimum("test_accuracy") == pytest.approx(NB201_OPTIMA[dataset], abs=1e-4)
    assert not bench.partial


def test_nb201_query_by_any_isomorphic_encoding(nb201):
    space = nb201.space
    best = space.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")
    assert nb201.query(best)["test_accuracy"] == pytest.approx(94.3733, abs=1e-4)
    # every one of the 15,625 encodings is tabulated
    assert all(nb201.contains(a) for a in space.enumerate())


def test_macro_rows_optimum_and_costs(macro):
    assert len(macro) == 6561
    assert macro.optimum("test_accuracy") == pytest.approx(93.127, abs=1e-3)
    assert macro.best_key("test_accuracy") == "22212220"
    res = macro.query(macro.space.from_string("02012100"))
    assert res["test_accuracy"] == pytest.approx(89.19666, abs=1e-4)
    assert res["params"] == 890666 and res["flops"] == 47327744
    one = macro.query(macro.space.from_string("02012100"), seed=1)
    assert one["test_accuracy"] == pytest.approx(88.95, abs=1e-4)
    # optimum under a FLOPs limit is lower and its cell respects the limit
    limit = 3e7
    opt = macro.optimum("test_accuracy", max_cost={"flops": limit})
    key = macro.best_key("test_accuracy", max_cost={"flops": limit})
    assert opt < 93.127
    assert macro.query(macro.space.from_string(key))["flops"] <= limit


def test_graph_is_embedded():
    bench = B.load("nasbench_graph", dataset="cora")
    assert len(bench) == 26206
    assert bench.optimum("val_accuracy") == pytest.approx(81.9333, abs=1e-3)


def test_parquet_round_trip(tmp_path, macro):
    path = macro.to_parquet(tmp_path / "m.parquet")
    again = B.TabularBenchmark.from_parquet(path)
    assert again.keys == macro.keys and again.metrics == macro.metrics
    np.testing.assert_array_equal(again.values, macro.values)
    # and the loader finds it by name in a folder
    path.rename(tmp_path / "nasbench_macro.parquet")
    found = B.load("nasbench_macro", path=tmp_path)
    assert found.optimum("test_accuracy") == macro.optimum("test_accuracy")
    assert found.eval_time(found.space.from_string("02012100")) == pytest.approx(473.27744)


def test_raynas_data_env_folder(monkeypatch, macro_json):
    monkeypatch.setenv("RAYNAS_DATA", str(macro_json.parent))
    assert len(B.load("nasbench_macro")) == 6561


def test_missing_file_names_the_file_and_origin(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYNAS_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with pytest.raises(BenchmarkNotFoundError, match="nas-bench-macro_cifar10.json.*xiusu/NAS-Bench-Macro"):
        B.load("nasbench_macro")
    with pytest.raises(BenchmarkNotFoundError, match="does not exist"):
        B.load("nasbench201", path=tmp_path / "nope.csv")


def test_unknown_names_list_valid_ones(nb201_csv):
    with pytest.raises(UnknownNameError, match="nasbench201"):
        B.load("nasbench_2001")
    with pytest.raises(UnknownNameError, match="cifar100"):
        B.load("nasbench201", path=nb201_csv, dataset="mnist")
    with pytest.raises(UnknownNameError, match="test_accuracy"):
        B.load("nasbench201", path=nb201_csv).optimum("val_accuracy")


def test_corrupt_files_raise_format_errors(tmp_path):
    bad_json = tmp_path / "nas-bench-macro_cifar10.json"
    bad_json.write_text('{"0201": {"mean_acc": 1')
    with pytest.raises(BenchmarkFormatError, match="not valid JSON"):
        B.load("nasbench_macro", path=bad_json)
    bad_json.write_text(json.dumps({"0201": {"mean_acc": 1, "params": 1, "flops": 1}}))
    with pytest.raises(BenchmarkFormatError, match="bad record '0201'"):
        B.load("nasbench_macro", path=bad_json)
    bad_csv = tmp_path / "nats_bench.csv"
    bad_csv.write_text("a,b\n1,2\n")
    with pytest.raises(BenchmarkFormatError, match="missing column"):
        B.load("nasbench201", path=bad_csv)
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_bytes(b"PAR1 garbage")
    with pytest.raises(BenchmarkFormatError, match="not a readable Parquet"):
        B.TabularBenchmark.from_parquet(not_parquet)


def test_invalid_arch_query_raises(nb201):
    with pytest.raises(InvalidArchitectureError):
        nb201.query(("none",) * 3)


def test_generic_import_partial_table(tmp_path, nb201):
    space = nb201.space
    by_key = {}
    for a in space.enumerate():
        by_key.setdefault(space.key(a), a)
    archs = list(by_key.values())[:40:2]
    csv = tmp_path / "mine.csv"
    lines = ["arch,acc,secs"] + [f"{space.to_string(a)},{50 + i},{10 * i}" for i, a in enumerate(archs)]
    lines.append(f"{space.to_string(archs[0])},52,0")  # a second run of the first cell
    csv.write_text("\n".join(lines) + "\n")
    bench = import_table(csv, "nasbench201", "arch", {"val_accuracy": "acc", "train_time": "secs"})
    assert bench.partial and bench.n_seeds == 2
    assert bench.query(archs[0])["val_accuracy"] == pytest.approx(51.0)
    assert bench.query(archs[0], seed=1)["val_accuracy"] == pytest.approx(52.0)
    missing = list(by_key.values())[1]
    assert bench.contains(archs[1]) and not bench.contains(missing)
    with pytest.raises(CellNotTabulatedError, match=space.key(missing).replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        bench.query(missing)
    assert {space.key(a) for a in bench.candidates()} == {space.key(a) for a in archs}
    path = bench.to_parquet(tmp_path / "mine.parquet")
    again = B.load("custom", path=path)
    assert again.partial and again.query(archs[3])["val_accuracy"] == pytest.approx(53.0)
    assert again.eval_time(archs[3]) == pytest.approx(30.0)


def test_import_rejects_bad_rows(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("arch,acc\n|conv~0|+|x~0|y~1|+|a~0|b~1|c~2|,1\n")
    with pytest.raises(BenchmarkFormatError, match="row 1"):
        import_table(csv, "nasbench201", "arch", {"val_accuracy": "acc"})
    with pytest.raises(BenchmarkFormatError, match="no column"):
        import_table(csv, "nasbench201", "architecture", {"val_accuracy": "acc"})


def test_query_never_returns_nan(tmp_path):
    space = B.load("nasbench_graph").space
    arch = space.sample(np.random.default_rng(0))
    csv = tmp_path / "t.csv"
    csv.write_text(f"arch,acc,lat\n\"{space.to_string(arch)}\",,0.5\n")
    bench = import_table(csv, "nasbench_graph", "arch", {"val_accuracy": "acc", "latency": "lat"})
    assert bench.query(arch) == {"latency": 0.5}


def _nb201_csv(path, space, archs) -> None:
    """A CSV in NATS-Bench's topology layout with made-up accuracies for ``archs``."""
    path.write_text("ArchitectureString,CIFAR10TestAccuracy200Epochs\n"
                    + "".join(f"{space.to_string(a)},{50 + i % 40}\n" for i, a in enumerate(archs)))


def test_a_cut_benchmark_file_warns_with_the_expected_and_found_counts(tmp_path):
    import warnings

    from conftest import MACRO_EXCERPT

    from raynas.spaces import get_space

    space = get_space("nasbench201")
    full, cut = tmp_path / "full.csv", tmp_path / "cut.csv"
    _nb201_csv(full, space, list(space.enumerate()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the complete file loads without a warning
        assert len(B.load("nasbench201", path=full)) == 6466
    cut.write_text("".join(full.read_text().splitlines(keepends=True)[:9001]))  # cut at a line break
    with pytest.warns(UserWarning, match="cut.csv holds 9,000 records where the complete nasbench201 has 15,625"):
        bench = B.load("nasbench201", path=cut)
    converted = bench.to_parquet(tmp_path / "cut.parquet")
    with pytest.warns(UserWarning, match=f"cut.parquet holds {len(bench):,} cells where the complete nasbench201 "
                                         "has 6,466: the file is incomplete"):
        B.load("nasbench201", path=converted)
    macro = json.loads(MACRO_EXCERPT.read_text())
    (tmp_path / "macro.json").write_text(json.dumps(dict(list(macro.items())[:50])))
    with pytest.warns(UserWarning, match="holds 50 records where the complete nasbench_macro has 6,561"):
        B.load("nasbench_macro", path=tmp_path / "macro.json")


def test_the_cli_prints_the_incomplete_file_warning_to_stderr(tmp_path):
    import subprocess
    import sys

    from conftest import NB201_EXCERPT

    cut = tmp_path / "cut.csv"
    cut.write_text("".join(NB201_EXCERPT.read_text().splitlines(keepends=True)[:101]))
    done = subprocess.run([sys.executable, "-m", "raynas.cli", "data", "info", "nasbench201", "--data", str(cut)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and json.loads(done.stdout)["cells"] < 100
    assert done.stderr.startswith(f"warning: {cut} holds 100 records where the complete nasbench201 has 15,625")
