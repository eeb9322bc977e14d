"""Reports of experiments whose studies failed, some before recording a single row."""

from __future__ import annotations

import pytest

from raynas import report
from raynas.runner._compare import add_incumbent, write_rows


def _results(path, rows):
    write_rows(rows, path, ["val_accuracy"])
    return path


def test_a_study_that_failed_before_its_first_checkpoint_is_reported_as_failed(tmp_path):
    random = add_incumbent([{"method": "random", "seed": 0, "query": q, "time": float(q), "val_accuracy": 0.1 * q}
                            for q in range(5)], "val_accuracy", "max")
    dnas = [{"method": "dnas", "seed": 0, "query": 0, "error": "study failed: RayTaskError"}]  # no checkpoint
    results = _results(tmp_path / "results.parquet", random + dnas)
    summaries = report.summarize(results, 1.0, methods=["random", "dnas", "nao"])  # nao: no row at all
    md = report.to_markdown(summaries, "val_accuracy", 1.0)
    assert "| random | 1 | 0.400 ± 0.000 | 0.6000 | 0/1 | - | 0 |" in md
    assert "| dnas | 1 | - | - | 0/1 | - | 1 |" in md and "nan" not in md
    assert "dnas failed: no successful query was recorded (1 error(s)" in md
    assert "nao failed: no successful query was recorded (the study left no row)" in md
    assert "random failed" not in md
    report.to_csv(summaries, tmp_path / "summary.csv")
    report.write_report(tmp_path, report.Experiment("x", "val_accuracy", 1.0, methods=["random", "dnas", "nao"]))
    for name in ("curves.png", "final.png", "report.md", "report.html"):
        assert (tmp_path / name).stat().st_size > 0
    assert "Failed (no successful query recorded): dnas, nao" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("optimum", [1.0, None])
def test_a_report_of_only_failed_studies_says_so(tmp_path, optimum):
    results = _results(tmp_path / "results.parquet", [])
    summaries = report.summarize(results, optimum, methods=["dnas"])
    md = report.to_markdown(summaries, "val_accuracy", optimum)
    assert "dnas failed: no successful query was recorded" in md
    report.to_csv(summaries, tmp_path / "summary.csv")
    report.write_report(tmp_path, report.Experiment("x", "val_accuracy", optimum, methods=["dnas"]))
    for name in ("curves.png", "final.png", "report.md", "report.html"):
        assert (tmp_path / name).stat().st_size > 0
    assert "no method is tested" in (tmp_path / "report.md").read_text()


# ---------------------------------------------------------------------------- issue 15: the full report
def _synthetic(path, seeds=6, budget=30, gap=2.0):
    """A results table with a known outcome: ``good`` beats ``random`` by about ``gap`` points."""
    import numpy as np

    rows = []
    for method, shift in (("random", 0.0), ("evolution", gap), ("dnas", gap / 2)):
        for seed in range(seeds):
            rng = np.random.default_rng(100 * seed + len(method))
            for q in range(budget):
                acc = 70 + shift + 5 * rng.random()
                rows.append({"method": method, "seed": seed, "query": q, "time": 3.0 * q + rng.random(),
                             "val_accuracy": acc, "test_accuracy": acc - 1, "params": 0.2 + rng.random()})
            add_incumbent(rows[-budget:], "val_accuracy", "max")
    write_rows(rows, path, ["val_accuracy", "test_accuracy", "params"])
    return path


def _expected(path, methods, optimum, marks):
    """Everything the tables should say, recomputed from the Parquet file with pandas and scipy."""
    import pandas as pd
    from scipy import stats

    df = pd.read_parquet(path)
    df = df[df.query_ >= 0] if "query_" in df else df
    out = {}
    for m in methods:
        d = df[df.method == m].sort_values(["seed", "query"])
        best = {c: d[d["query"] < c].groupby("seed").val_accuracy.max() for c in marks}
        out[m] = {"best": {c: (v.mean(), v.std(ddof=0)) for c, v in best.items()},
                  "final": best[marks[-1]].to_numpy(), "regret": (optimum - best[marks[-1]]).mean()}
    base = max((m for m in methods if m in report.CLASSIC), key=lambda m: out[m]["final"].mean())
    for m in methods:
        if m != base:
            out[m]["p"] = stats.mannwhitneyu(out[m]["final"], out[base]["final"], alternative="two-sided").pvalue
    return out, base


def test_the_tables_match_the_parquet_results(tmp_path):
    import csv

    results = _synthetic(tmp_path / "results.parquet")
    methods, optimum = ["random", "evolution", "dnas"], 80.0
    exp = report.Experiment("synthetic: 3 methods x 6 seeds x 30 queries", "val_accuracy", optimum,
                            methods=methods, benchmark="nasbench_graph", dataset="cora")
    summary = report.write_report(tmp_path, exp)
    expected, base = _expected(results, methods, optimum, [25, 30])
    assert base == "evolution"
    rows = {r["method"]: r for r in csv.DictReader(open(tmp_path / "summary.csv"))}
    for m in methods:
        for c in (25, 30):
            assert float(rows[m][f"best_mean@{c}"]) == pytest.approx(expected[m]["best"][c][0])
            assert float(rows[m][f"best_std@{c}"]) == pytest.approx(expected[m]["best"][c][1])
        assert float(rows[m]["regret_mean"]) == pytest.approx(expected[m]["regret"])
        mean, sd = expected[m]["best"][30]
        assert f"| {m} | 6 | " in summary and f"{mean:.3f} ± {sd:.3f}" in summary
    md = (tmp_path / "report.md").read_text()
    assert "the best of those run here is **evolution**" in md
    for m in ("random", "dnas"):
        p = expected[m]["p"]
        diff = expected[m]["final"].mean() - expected["evolution"]["final"].mean()
        shown = "< 0.001" if p < 0.001 else f"{p:.3f}"
        assert f"| {m} | 6 vs 6 | {diff:.4f} |" in md and f"| {shown} |" in md
    # a gap of 2 points over 6 seeds is significant; the verdict says which way
    assert expected["random"]["p"] < 0.05
    assert "| random | 6 vs 6 |" in md and "worse (p < 0.05)" in md
    assert "evolution | 6 vs" not in md  # the baseline is not tested against itself


def test_a_report_holds_every_figure_and_the_html_embeds_them(tmp_path):
    import base64
    import re

    _synthetic(tmp_path / "results.parquet")
    (tmp_path / "explain" / "dnas_seed0").mkdir(parents=True)  # as `raynas explain DIR` leaves it
    (tmp_path / "explain" / "dnas_seed0" / "factors.png").write_bytes((tmp_path / "results.parquet").read_bytes()[:0])
    exp = report.Experiment("synthetic", "val_accuracy", 80.0, methods=["random", "evolution", "dnas"],
                            max_cost={"params": 0.8})
    report.write_report(tmp_path, exp)
    figures = ["curves.png", "final.png", "cost_params.png", "explain/dnas_seed0/factors.png"]
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([^"]*)"', html)
    assert len(embedded) == len(figures)
    for name, data in zip(figures, embedded):
        assert f"]({name})" in md
        assert base64.b64decode(data) == (tmp_path / name).read_bytes()
        if not name.startswith("explain"):
            assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'src="' not in html.replace('src="data:', "")  # nothing outside the file
    assert "Constrained search: val_accuracy against params" in md and "DNAS controller explained" in md


def test_ci95_is_students_t_interval_of_the_mean():
    import numpy as np
    from scipy import stats

    mat = np.array([[1.0, 2.0, np.nan], [2.0, 2.0, np.nan], [4.0, 2.0, 5.0]])
    mean, half = report.ci95(mat)
    assert mean[0] == pytest.approx(7 / 3) and mean[2] == 5.0
    lo, hi = stats.t.interval(0.95, 2, loc=7 / 3, scale=stats.sem([1.0, 2.0, 4.0]))
    assert half[0] == pytest.approx((hi - lo) / 2)
    assert half[1] == 0.0 and half[2] == 0.0  # no spread; a single value


def test_pareto_front_keeps_the_cells_nothing_beats():
    import numpy as np

    cost = np.array([1.0, 2.0, 2.0, 3.0, 0.5, 4.0])
    acc = np.array([70.0, 75.0, 72.0, 74.0, 60.0, 80.0])
    assert report.pareto_front(cost, acc).tolist() == [4, 0, 1, 5]
    assert report.pareto_front(cost, acc, mode="min").tolist() == [4]  # lower is better: 60 at 0.5


def test_paper_numbers_sit_beside_ours_only_where_benchmark_and_budget_match(tmp_path):
    rows = []
    for seed, accs in enumerate(([93.0, 94.5, 94.0], [93.5, 93.2, 94.9])):
        rows += add_incumbent([{"method": "dnas", "seed": seed, "query": q, "val_accuracy": a, "test_accuracy": a - 0.5}
                               for q, a in enumerate(accs * 100)], "val_accuracy", "max")  # 300 queries
    path = tmp_path / "results.parquet"
    write_rows(rows, path, ["val_accuracy", "test_accuracy"])
    exp = report.Experiment("x", "val_accuracy", methods=["dnas"], benchmark="nasbench101")
    got = {(r[0], r[1]): r for r in report.reference_rows(path, exp)}
    assert set(got) == {("dnas", "150"), ("dnas", "200"), ("dnas", "300")}  # Tables 1 and 3; not 2000 queries
    assert got[("dnas", "300")][2] == "94.21" and "Table 1" in got[("dnas", "300")][4]
    assert got[("dnas", "200")][2] == "94.05 ± 0.12"
    # ours: test accuracy of the incumbent by val_accuracy (94.5 -> 94.0 and 94.9 -> 94.4)
    assert got[("dnas", "150")][3] == "94.20 ± 0.20 (2 seeds)"
    assert report.reference_rows(path, report.Experiment("x", "val_accuracy", methods=["dnas"],
                                                         benchmark="nasbench201")) == []


def _chromium() -> str | None:
    import shutil

    return next((shutil.which(n) for n in ("chromium", "chromium-headless-shell", "chromium-browser",
                                           "google-chrome") if shutil.which(n)), None)


def test_the_html_report_shows_its_images_in_headless_chromium(tmp_path):
    import re
    import subprocess

    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium is absent (install Debian's chromium to run this test)")
    _synthetic(tmp_path / "results.parquet")
    report.write_report(tmp_path, report.Experiment("synthetic", "val_accuracy", 80.0,
                                                    methods=["random", "evolution", "dnas"]))
    page = tmp_path / "check.html"  # the report plus a script that counts the images that decoded
    page.write_text((tmp_path / "report.html").read_text().replace(
        "</body>", "<script>window.onload=()=>{const ok=[...document.images].filter(i=>i.complete&&"
                   "i.naturalWidth>100).length;document.body.setAttribute('data-decoded',String(ok));};"
                   "</script></body>"))
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert re.search(r'data-decoded="2"', out), out[-500:]


def test_with_one_seed_there_is_no_test_against_the_baseline(tmp_path):
    _synthetic(tmp_path / "results.parquet", seeds=1)
    summary = report.write_report(tmp_path, report.Experiment("x", "val_accuracy", 80.0,
                                                              methods=["random", "evolution", "dnas"]))
    assert summary.count("| dnas |") == 1 and "needs at least 2 seeds per method" in summary
    assert "Mann-Whitney U test needs at least 2 seeds" in (tmp_path / "report.md").read_text()


def test_report_html_escapes_text_from_the_results(tmp_path):
    rows = add_incumbent([{"method": "<script>alert(1)</script>", "seed": 0, "query": q, "val_accuracy": float(q)}
                          for q in range(3)], "val_accuracy", "max")
    write_rows(rows, tmp_path / "results.parquet", ["val_accuracy"])
    report.write_report(tmp_path, report.Experiment("<b>x</b>", "val_accuracy", 5.0))
    html = (tmp_path / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<b>x</b>" not in html
