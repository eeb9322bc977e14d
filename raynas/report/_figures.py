"""The figures of a report (headless matplotlib, PNG): anytime curves, final regret, cost scatter."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from raynas.report._stats import ci95
from raynas.report._summary import budget_of, column, incumbent_matrix

#: What the time axis of each backend measures.
TIME_LABELS = {
    "sim": "simulated time (s): each query costs the cell's training time in the table, or the "
           "benchmark's cost model where it has none (raynas data info), on the study's simulated workers",
    "wall": "wall-clock time (s) since the study started",
}


@dataclass
class Figure:
    """What a report's figures are of: the title, objective and optimum shared by every figure."""

    title: str  # e.g. "nasbench_graph / cora: 3 seeds x 50 queries"
    metric: str
    optimum: float | None = None
    mode: str = "max"
    time_label: str = TIME_LABELS["sim"]
    methods: Sequence[str] | None = None
    max_cost: dict[str, float] = field(default_factory=dict)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _methods(table, fig: Figure) -> list[str]:
    present = list(dict.fromkeys(table.column("method").to_pylist()))
    return list(fig.methods) if fig.methods else present


def _colors(methods: Sequence[str]) -> dict[str, str]:
    cycle = [f"C{i}" for i in range(10)]
    return {m: cycle[i % len(cycle)] for i, m in enumerate(methods)}


def time_matrix(table, method: str, grid: np.ndarray) -> np.ndarray:
    """``(seeds, len(grid))`` best-so-far of ``method`` at each time of ``grid`` (NaN before its first result)."""
    meth, seed, times, inc = (column(table, "method", ""), column(table, "seed", -1), column(table, "time"),
                              column(table, "incumbent"))
    curves = []
    for s in sorted(set(seed[meth == method].tolist())):
        sel = (meth == method) & (seed == s) & np.isfinite(times)
        if not sel.any():  # no time recorded for this study
            continue
        order = np.argsort(times[sel], kind="stable")
        t, v = times[sel][order], inc[sel][order]
        idx = np.searchsorted(t, grid, side="right") - 1
        curves.append(np.where(idx >= 0, v[np.clip(idx, 0, None)], np.nan))
    return np.asarray(curves, float).reshape(len(curves), len(grid))


def plot_curves(results: str | Path, path: str | Path, fig: Figure) -> Path:
    """Best-so-far against queries and against time: mean over seeds with its 95% confidence band.

    The y-axis spans every mean curve from the first query on, so no curve is clipped; the
    dashed line is the benchmark optimum (the best mean value in the table, within any limits).
    """
    plt = _pyplot()
    table = pq.read_table(results)
    budget = budget_of(table)
    methods = _methods(table, fig)
    colors = _colors(methods)
    times = column(table, "time")
    t_max = float(np.nanmax(times)) if np.isfinite(times).any() else 1.0
    grid = np.linspace(0, t_max, 300)
    figure, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    lows, highs = [], []
    for method in methods:
        mat = incumbent_matrix(table, method, budget)
        failed = not np.isfinite(mat).any()
        label = f"{method} (failed)" if failed else method
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for ax, x, m in ((ax1, np.arange(1, budget + 1), mat), (ax2, grid, time_matrix(table, method, grid))):
                if not m.size:
                    ax.plot([], [], color=colors[method], label=label)
                    continue
                mean, half = ci95(m)
                if ax is ax2:  # only where every seed has a result: a mean of some seeds jumps
                    mean[np.isfinite(m).sum(axis=0) < len(m)] = np.nan
                ax.plot(x, mean, color=colors[method], label=label, lw=1.6)
                ax.fill_between(x, mean - half, mean + half, color=colors[method], alpha=0.12, lw=0)
                if np.isfinite(mean).any():
                    lows.append(np.nanmin(mean))
                    highs.append(np.nanmax(mean))
    n_seeds = sorted({len(set(column(table, "seed", -1)[column(table, "method", "") == m].tolist())) for m in methods})
    for ax, xlabel in ((ax1, "queries to the benchmark (evaluated cells)"), (ax2, fig.time_label)):
        if fig.optimum is not None:
            ax.axhline(fig.optimum, color="k", lw=0.9, ls="--", label=f"benchmark optimum ({fig.optimum:.4g})")
            highs.append(fig.optimum)
            lows.append(fig.optimum)
        ax.set_xlabel(xlabel if len(xlabel) < 60 else _wrap(xlabel), fontsize=9)
        ax.set_ylabel(f"best {fig.metric} so far")
        ax.grid(alpha=0.3)
    seeds = "/".join(str(n) for n in n_seeds) or "0"
    ax1.set_title(f"against queries: mean and 95% CI over {seeds} seeds", fontsize=10)
    ax2.set_title("against time: mean and 95% CI over seeds", fontsize=10)
    if lows and highs:
        lo, hi = min(lows), max(highs)
        pad = 0.05 * (hi - lo) if hi > lo else 0.5
        for ax in (ax1, ax2):
            ax.set_ylim(lo - pad, hi + pad)
    ax1.set_xlim(1, max(budget, 2))
    _legend_right(figure, ax1)
    figure.suptitle(fig.title)
    figure.tight_layout(rect=(0, 0, 0.84, 1))
    return _save(figure, path, plt)


def _legend_right(figure, ax) -> None:
    """One legend for every panel, to the right of them."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="center right", fontsize=9, frameon=False)


def _wrap(text: str, width: int = 60) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _save(figure, path, plt) -> Path:
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def final_values(table, methods: Sequence[str]) -> dict[str, np.ndarray]:
    """Each method's best value at the full budget, one per seed (NaN for a seed without success)."""
    budget = budget_of(table)
    return {m: incumbent_matrix(table, m, budget)[:, -1] if budget else np.zeros(0) for m in methods}


def plot_final(results: str | Path, path: str | Path, fig: Figure) -> Path:
    """Regret at the full budget (best value when the optimum is unknown): box plot and ECDF per method."""
    plt = _pyplot()
    table = pq.read_table(results)
    methods = _methods(table, fig)
    colors = _colors(methods)
    sign = 1.0 if fig.mode == "max" else -1.0
    finals = final_values(table, methods)
    if fig.optimum is not None:
        values = {m: sign * (fig.optimum - v) for m, v in finals.items()}
        what = f"regret at {budget_of(table)} queries (optimum - best {fig.metric})"
    else:
        values = finals
        what = f"best {fig.metric} at {budget_of(table)} queries"
    values = {m: v[np.isfinite(v)] for m, v in values.items()}
    figure, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    shown = [m for m in methods if len(values[m])]
    if shown:
        import matplotlib

        horizontal = ({"orientation": "horizontal"} if tuple(int(x) for x in matplotlib.__version__.split(".")[:2])
                      >= (3, 10) else {"vert": False})
        box = ax1.boxplot([values[m] for m in shown], patch_artist=True, widths=0.6, **horizontal)
        ax1.set_yticks(range(1, len(shown) + 1), shown)
        for patch, m in zip(box["boxes"], shown):
            patch.set_facecolor(colors[m])
            patch.set_alpha(0.35)
        rng = np.random.default_rng(0)  # jitter of the seed dots only
        for i, m in enumerate(shown, start=1):
            ax1.scatter(values[m], i + rng.uniform(-0.15, 0.15, len(values[m])), s=12, color=colors[m], zorder=3)
        ax1.invert_yaxis()
        for m in shown:
            v = np.sort(values[m])
            ax2.step(np.concatenate([[v[0]], v]), np.arange(len(v) + 1) / len(v), where="post",
                     color=colors[m], label=m)
        _legend_right(figure, ax2)
    ax1.set_title("one dot per seed; box: quartiles, whiskers: 1.5 IQR", fontsize=10)
    ax2.set_title("ECDF: share of seeds at or below each value", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_xlabel(what)
        ax.grid(alpha=0.3)
    ax2.set_ylabel("share of seeds")
    figure.suptitle(fig.title)
    figure.tight_layout(rect=(0, 0, 0.87, 1))
    return _save(figure, path, plt)


def pareto_front(cost: np.ndarray, value: np.ndarray, mode: str = "max") -> np.ndarray:
    """Indices of the cells no other cell beats on both cost (lower) and value, by ascending cost."""
    sign = 1.0 if mode == "max" else -1.0
    order = np.lexsort((-sign * value, cost))
    front, best = [], -np.inf
    for i in order:
        if sign * value[i] > best:
            front.append(i)
            best = sign * value[i]
    return np.asarray(front, int)


def plot_costs(results: str | Path, path: str | Path, fig: Figure, cost: str) -> Path | None:
    """Objective against ``cost`` of every evaluated cell, the Pareto front and the limit; None without costs."""
    table = pq.read_table(results)
    if cost not in table.column_names:
        return None
    plt = _pyplot()
    methods = _methods(table, fig)
    colors = _colors(methods)
    meth, c, v = column(table, "method", ""), column(table, cost), column(table, fig.metric)
    ok = np.isfinite(c) & np.isfinite(v)
    if not ok.any():
        return None
    figure, ax = plt.subplots(figsize=(8, 5.5))
    for m in methods:
        sel = ok & (meth == m)
        ax.scatter(c[sel], v[sel], s=10, alpha=0.5, color=colors[m], label=m)
    front = pareto_front(c[ok], v[ok], fig.mode)
    fx, fy = c[ok][front], v[ok][front]
    ax.step(np.append(fx, c[ok].max()), np.append(fy, fy[-1]), where="post", color="k", lw=1.2, label="Pareto front of all evaluated cells")
    limit = fig.max_cost.get(cost)
    if limit is not None:
        ax.axvline(limit, color="r", ls="--", lw=1.2, label=f"limit: {cost} <= {limit:g}")
    if fig.optimum is not None:
        ax.axhline(fig.optimum, color="k", ls=":", lw=0.9, label=f"optimum within the limits ({fig.optimum:.4g})")
    ax.set_xlabel(f"{cost} of the cell (as the table records it)")
    ax.set_ylabel(fig.metric)
    ax.set_title(f"every evaluated cell: {fig.metric} against {cost}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    figure.suptitle(fig.title)
    figure.tight_layout()
    return _save(figure, path, plt)
