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
    assert report.plot_curves(results, tmp_path / "curves.png", "val_accuracy", 1.0).stat().st_size > 0


@pytest.mark.parametrize("optimum", [1.0, None])
def test_a_report_of_only_failed_studies_says_so(tmp_path, optimum):
    results = _results(tmp_path / "results.parquet", [])
    summaries = report.summarize(results, optimum, methods=["dnas"])
    md = report.to_markdown(summaries, "val_accuracy", optimum)
    assert "dnas failed: no successful query was recorded" in md
    report.to_csv(summaries, tmp_path / "summary.csv")
    assert report.plot_curves(results, tmp_path / "curves.png", "val_accuracy", optimum).stat().st_size > 0
