"""The summary table of a comparison (Markdown, CSV), read from ``results.parquet``.

Input is ``results.parquet`` (one row per query, see :mod:`raynas.runner`). For each method the
summary gives the mean ± std over seeds of the best objective value after 25/50/100/150/...
queries, the mean regret to the benchmark optimum at the full budget, and how many queries the
seeds needed to reach the optimum.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

DEFAULT_CHECKPOINTS = (25, 50, 100, 150)


@dataclass
class MethodSummary:
    method: str
    seeds: int
    best: dict[int, tuple[float, float]]  # budget -> (mean, std) of the best value
    regret: float  # mean regret at the full budget
    regret_std: float
    reached: int  # seeds that reached the optimum
    queries_to_optimum: float  # mean over the seeds that reached it (nan if none)
    errors: int


def column(table, name: str, fill=np.nan) -> np.ndarray:
    """Column ``name`` of a results table as an array, ``fill`` where it is null."""
    values = table.column(name).to_pylist()
    if isinstance(fill, float):
        return np.asarray([fill if v is None else v for v in values], float)
    return np.asarray([fill if v is None else v for v in values])


def budget_of(table) -> int:
    """Queries per study: one more than the largest query index in the table."""
    return int(max(table.column("query").to_pylist(), default=-1)) + 1


def incumbent_matrix(table, method: str, budget: int) -> np.ndarray:
    """``(seeds, budget)`` best-so-far values of ``method``, padded with the last value."""
    methods = np.asarray(table.column("method").to_pylist())
    seeds = np.asarray(table.column("seed").to_pylist())
    inc = column(table, "incumbent")
    query = column(table, "query", -1)
    sel = methods == method
    out = []
    for seed in sorted(set(seeds[sel].tolist())):
        rows = sel & (seeds == seed) & (query >= 0)
        order = np.argsort(query[rows])
        curve = inc[rows][order][:budget]
        if len(curve) < budget:
            curve = np.concatenate([curve, np.full(budget - len(curve), curve[-1] if len(curve) else np.nan)])
        out.append(curve)
    return np.asarray(out, dtype=float).reshape(len(out), budget)


def _nan_stat(fn, values: np.ndarray) -> float:
    """``fn`` (nanmean, nanstd) of ``values``; NaN without a warning when every value is NaN."""
    return float(fn(values)) if np.isfinite(values).any() else math.nan


def summarize(
    results: str | Path,
    optimum: float | None,
    mode: str = "max",
    checkpoints: Sequence[int] = DEFAULT_CHECKPOINTS,
    methods: Sequence[str] | None = None,
) -> list[MethodSummary]:
    """Summaries per method from a ``results.parquet``."""
    table = pq.read_table(results)
    budget = budget_of(table)
    methods = methods or list(dict.fromkeys(table.column("method").to_pylist()))
    errors = np.asarray([e is not None for e in table.column("error").to_pylist()])
    all_methods = np.asarray(table.column("method").to_pylist())
    sign = 1.0 if mode == "max" else -1.0
    marks = sorted({c for c in checkpoints if c < budget} | ({budget} if budget else set()))
    out = []
    for method in methods:
        mat = incumbent_matrix(table, method, budget)
        best = {}
        for c in marks:
            col = mat[:, c - 1]
            best[c] = (_nan_stat(np.nanmean, col), _nan_stat(np.nanstd, col))
        if optimum is not None and budget:  # budget 0: every study failed without a row
            regret = sign * (optimum - mat[:, -1])
            hit = sign * (mat - optimum) >= -1e-9
            reached = hit.any(axis=1)
            first = np.where(reached, hit.argmax(axis=1) + 1, 0)
            q2o = float(first[reached].mean()) if reached.any() else math.nan
            out.append(MethodSummary(method, len(mat), best, _nan_stat(np.nanmean, regret),
                                     _nan_stat(np.nanstd, regret), int(reached.sum()), q2o,
                                     int(errors[all_methods == method].sum())))
        else:
            out.append(MethodSummary(method, len(mat), best, math.nan, math.nan, 0, math.nan,
                                     int(errors[all_methods == method].sum())))
    return out


def to_markdown(summaries: list[MethodSummary], metric: str, optimum: float | None) -> str:
    """The summary table; without a known optimum (real training) the regret columns are left out."""
    marks = list(summaries[0].best) if summaries else []
    regret = [f"regret@{marks[-1]}" if marks else "regret", "reached opt.", "queries to opt."] if optimum is not None else []
    head = ["method", "seeds", *[f"best@{c}" for c in marks], *regret, "errors"]
    lines = [f"Objective: {metric}" + (f"; optimum {optimum:.4f}" if optimum is not None else ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        cells = [s.method, str(s.seeds), *["-" if math.isnan(m) else f"{m:.3f} ± {sd:.3f}" for m, sd in s.best.values()]]
        if optimum is not None:
            cells += ["-" if math.isnan(s.regret) else f"{s.regret:.4f}", f"{s.reached}/{s.seeds}",
                      "-" if math.isnan(s.queries_to_optimum) else f"{s.queries_to_optimum:.1f}"]
        cells.append(str(s.errors))
        lines.append("| " + " | ".join(cells) + " |")
    failed = [s for s in summaries if failed_method(s)]
    if failed:
        lines.append("")
    for s in failed:  # e.g. every study failed before its first checkpoint
        why = f"{s.errors} error(s), in the error column of results.parquet" if s.errors else "the study left no row"
        lines.append(f"{s.method} failed: no successful query was recorded ({why}).")
    return "\n".join(lines) + "\n"


def failed_method(summary: MethodSummary) -> bool:
    """True when no query of any seed of the method succeeded."""
    return not any(math.isfinite(m) for m, _ in summary.best.values())


def to_csv(summaries: list[MethodSummary], path: str | Path) -> None:
    marks = list(summaries[0].best) if summaries else []
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "seeds", *[f"best_mean@{c}" for c in marks], *[f"best_std@{c}" for c in marks],
                    "regret_mean", "regret_std", "reached", "queries_to_optimum", "errors"])
        for s in summaries:
            w.writerow([s.method, s.seeds, *[m for m, _ in s.best.values()], *[sd for _, sd in s.best.values()],
                        s.regret, s.regret_std, s.reached, s.queries_to_optimum, s.errors])
