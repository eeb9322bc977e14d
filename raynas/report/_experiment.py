"""Every report file of one experiment folder, from its ``results.parquet``.

:func:`write_report` writes, next to ``results.parquet``:

- ``summary.md`` / ``summary.csv``: per method the best value at the budget checkpoints (mean ±
  std over seeds), the regret at the full budget, the seeds that reached the optimum and after
  how many queries; ``summary.md`` adds each method against the best baseline.
- ``curves.png``: best-so-far against queries and against time, mean and 95% CI over seeds.
- ``final.png``: regret (or best value) at the full budget, box plot and ECDF.
- ``cost_<name>.png``, for each limit of a constrained run: objective against that cost of every
  evaluated cell, the Pareto front and the limit.
- ``report.md`` and a self-contained ``report.html`` holding all of it, with the paper's numbers
  beside ours where the benchmark and budget match, and the ``raynas explain`` figures of the
  DNAS studies where they have been made (``DIR/explain``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from raynas.report._document import Document, fmt, fmt_p
from raynas.report._figures import (
    TIME_LABELS,
    Figure,
    final_values,
    plot_costs,
    plot_curves,
    plot_final,
)
from raynas.report._references import matching
from raynas.report._stats import ALPHA, CLASSIC, against_baseline
from raynas.report._summary import (
    DEFAULT_CHECKPOINTS,
    budget_of,
    column,
    summarize,
    to_csv,
    to_markdown,
)

RESULTS_FILE = "results.parquet"
#: Where ``raynas explain DIR`` writes its figures by default.
EXPLAIN_DIR = "explain"


@dataclass
class Experiment:
    """What a report needs to know beyond ``results.parquet``.

    Args:
        heading: First line of ``summary.md``, e.g. ``"nasbench_graph / cora: 8 methods x 3 seeds
            x 50 queries"``.
        metric: The objective column.
        optimum: The benchmark's best mean value within the limits (None for real training).
        mode: ``"max"`` or ``"min"``.
        time: ``"sim"`` (simulated time) or ``"wall"`` (wall-clock time) on the time axis.
        methods: Methods in the order of the experiment.
        benchmark: Benchmark name, for the paper references (None for real training).
        dataset: Its dataset.
        max_cost: Limits of a constrained run, e.g. ``{"params": 1.0}``.
        workers: Simulated workers per study (shown beside the time axis).
    """

    heading: str
    metric: str
    optimum: float | None = None
    mode: str = "max"
    time: str = "sim"
    methods: Sequence[str] = ()
    benchmark: str | None = None
    dataset: str | None = None
    max_cost: dict[str, float] = field(default_factory=dict)
    workers: int = 1
    checkpoints: Sequence[int] = DEFAULT_CHECKPOINTS


def significance_rows(results: str | Path, exp: Experiment) -> tuple[str | None, list[list[str]]]:
    """The best baseline and one table row per other method: difference, U, p, verdict."""
    table = pq.read_table(results)
    methods = list(exp.methods) or list(dict.fromkeys(table.column("method").to_pylist()))
    tests = against_baseline(final_values(table, methods), exp.mode, methods)
    rows = [[t.method, f"{t.n} vs {t.n_baseline}", fmt(t.difference, 4), fmt(t.u, 1), fmt_p(t.p),
             t.verdict(exp.mode)] for t in tests]
    return (tests[0].baseline if tests else None), rows


SIGNIFICANCE_HEAD = ["method", "seeds (method vs baseline)", "mean difference", "Mann-Whitney U", "p (two-sided)",
                     "verdict"]


def significance_markdown(results: str | Path, exp: Experiment) -> str:
    base, rows = significance_rows(results, exp)
    if base is None:
        return (f"\nNo classic baseline ({', '.join(CLASSIC)}) ran to completion: no method is tested against "
                "one.\n")
    if all(r[4] == "-" for r in rows):
        return (f"\nAgainst the best baseline, {base}: no test, as a Mann-Whitney U test needs at least 2 seeds "
                "per method.\n")
    lines = [f"\nAgainst the best baseline, {base} (the classic method with the best mean final {exp.metric}): "
             f"two-sided Mann-Whitney U test of the seeds' best {exp.metric} at the full budget, alpha = {ALPHA}.",
             "", "| " + " | ".join(SIGNIFICANCE_HEAD) + " |", "|" + "---|" * len(SIGNIFICANCE_HEAD)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def incumbent_values(table, method: str, queries: int, metric: str, value: str, mode: str = "max") -> np.ndarray:
    """Per seed: column ``value`` of the best cell by ``metric`` among the first ``queries`` queries."""
    meth, seed, query = column(table, "method", ""), column(table, "seed", -1), column(table, "query", -1)
    obj, val = column(table, metric), column(table, value)
    sign = 1.0 if mode == "max" else -1.0
    out = []
    for s in sorted(set(seed[meth == method].tolist())):
        sel = (meth == method) & (seed == s) & (query >= 0) & (query < queries) & np.isfinite(obj)
        if not sel.any():
            out.append(np.nan)
            continue
        idx = np.flatnonzero(sel)
        idx = idx[np.argsort(query[idx], kind="stable")]
        out.append(val[idx[int(np.argmax(sign * obj[idx]))]])
    return np.asarray(out, float)


def reference_rows(results: str | Path, exp: Experiment) -> list[list[str]]:
    """Rows of published numbers beside ours (test accuracy of the incumbent after as many queries)."""
    if exp.benchmark is None:
        return []
    table = pq.read_table(results)
    if "test_accuracy" not in table.column_names:
        return []
    rows = []
    for ref in matching(exp.benchmark, exp.dataset, exp.methods, budget_of(table)):
        ours = incumbent_values(table, ref.method, ref.queries, exp.metric, "test_accuracy", exp.mode)
        ours = ours[np.isfinite(ours)]
        paper = f"{ref.test_accuracy:.2f}" + (f" ± {ref.std:.2f}" if ref.std is not None else "")
        mine = f"{ours.mean():.2f} ± {ours.std():.2f} ({len(ours)} seeds)" if len(ours) else "-"
        rows.append([ref.method, str(ref.queries), paper, mine, ref.source])
    return rows


def explain_figures(out: Path) -> list[Path]:
    """The PNG figures ``raynas explain`` wrote under ``out/explain`` (none when it was not run)."""
    folder = out / EXPLAIN_DIR
    return sorted(folder.rglob("*.png")) if folder.is_dir() else []


def write_report(out: str | Path, exp: Experiment) -> str:
    """Write every report file of the experiment in ``out``; return ``summary.md``'s text."""
    out = Path(out)
    results = out / RESULTS_FILE
    summaries = summarize(results, exp.optimum, exp.mode, exp.checkpoints, methods=list(exp.methods) or None)
    table_md = to_markdown(summaries, exp.metric, exp.optimum)
    tests_md = significance_markdown(results, exp)
    summary = f"# {exp.heading}\n\n{table_md}{tests_md}"
    (out / "summary.md").write_text(summary)
    to_csv(summaries, out / "summary.csv")

    title = exp.heading
    time_label = TIME_LABELS[exp.time]
    if exp.time == "sim":
        time_label += f" ({exp.workers} per study)"
    fig = Figure(title, exp.metric, exp.optimum, exp.mode, time_label, list(exp.methods) or None,
                 dict(exp.max_cost))
    figures = {"curves": plot_curves(results, out / "curves.png", fig),
               "final": plot_final(results, out / "final.png", fig)}
    for name in exp.max_cost:
        path = plot_costs(results, out / f"cost_{name}.png", fig, name)
        if path is not None:
            figures[f"cost_{name}"] = path

    doc = _document(out, exp, summaries, figures, results)
    (out / "report.md").write_text(doc.markdown(out))
    (out / "report.html").write_text(doc.html(exp.heading))
    return summary


def _document(out: Path, exp: Experiment, summaries, figures: dict[str, Path], results: Path) -> Document:
    doc = Document()
    doc.h1(exp.heading)
    opt = (f"The dashed line is the benchmark optimum, {exp.optimum:.4g}: the best mean {exp.metric} of any "
           "cell in the table" + (" within the limits" if exp.max_cost else "") + "."
           if exp.optimum is not None else "The optimum is unknown (networks are trained), so there is no regret.")
    doc.p(f"Each method searched the same space with several seeds; a study's **best {exp.metric} so far** "
          f"after each query is its anytime performance. Curves show the mean over seeds and the 95% confidence "
          f"interval of that mean (Student's t). {opt}")
    doc.h2("Anytime performance")
    doc.img(figures["curves"], f"Best {exp.metric} so far against queries (left) and against "
                               f"{'simulated' if exp.time == 'sim' else 'wall-clock'} time (right).")
    doc.h2("Final results")
    what = "regret (optimum minus best value)" if exp.optimum is not None else f"best {exp.metric}"
    doc.img(figures["final"], f"{what.capitalize()} at the full budget, one value per seed.")
    doc.h2("Summary")
    head, rows = _summary_table(summaries, exp)
    doc.table(head, rows)
    failed = [s.method for s in summaries if not any(math.isfinite(m) for m, _ in s.best.values())]
    if failed:
        doc.p(f"Failed (no successful query recorded): {', '.join(failed)}; see the error column of "
              "`results.parquet`.")
    doc.p("best@N: mean ± std over seeds of the best value after N queries. "
          + ("regret: mean over seeds of optimum minus the best value at the full budget; reached: seeds that found "
             "the optimum; queries to opt.: mean queries those seeds needed." if exp.optimum is not None else ""))
    base, sig = significance_rows(results, exp)
    doc.h2("Against the best baseline")
    if base is None:
        doc.p(f"No classic baseline ({', '.join(CLASSIC)}) ran to completion, so no method is tested.")
    else:
        doc.p(f"Baselines are the classic strategies without a learned model of the space ({', '.join(CLASSIC)}); "
              f"the best of those run here is **{base}** (best mean final {exp.metric}). Each other method's best "
              f"{exp.metric} at the full budget, one value per seed, is compared with {base}'s by a two-sided "
              f"Mann-Whitney U test; 'better' or 'worse' means p < {ALPHA}.")
        if all(r[4] == "-" for r in sig):
            doc.p("No test: a Mann-Whitney U test needs at least 2 seeds per method.")
        else:
            doc.table(SIGNIFICANCE_HEAD, sig)
    refs = reference_rows(results, exp)
    if refs:
        doc.h2("Published numbers")
        doc.p("Test accuracy (%) of the best architecture found after as many queries: the paper's figure, and "
              f"ours (the test accuracy of the incumbent by {exp.metric}, mean ± std over seeds).")
        doc.table(["method", "queries", "paper", "raynas", "source"], refs)
    for name, path in figures.items():
        if name.startswith("cost_"):
            cost = name[len("cost_"):]
            doc.h2(f"Constrained search: {exp.metric} against {cost}")
            doc.img(path, f"Every evaluated cell, the Pareto front of them all and the limit {cost} <= "
                          f"{exp.max_cost[cost]:g}.")
    explained = explain_figures(out)
    if explained:
        doc.h2("DNAS controller explained")
        doc.p(f"Figures of `raynas explain` in `{EXPLAIN_DIR}/`: latent traversals and the latent factors "
              "against the objective (see the report.md next to them for the disentanglement scores).")
        for path in explained:
            doc.img(path, _relative_name(path, out))
    elif "dnas" in exp.methods:
        doc.p(f"DNAS studies ran: `raynas explain {out}` draws their latent traversals and factors into "
              f"`{EXPLAIN_DIR}/`, and `raynas report {out}` then includes them here.")
    doc.h2("Files")
    doc.p("`results.parquet` (one row per query), `summary.md`, `summary.csv`, "
          + ", ".join(f"`{p.name}`" for p in figures.values()) + ", `report.md`, `report.html`.")
    return doc


def _relative_name(path: Path, out: Path) -> str:
    try:
        return path.relative_to(out).as_posix()
    except ValueError:
        return path.name


def _summary_table(summaries, exp: Experiment) -> tuple[list[str], list[list[str]]]:
    marks = list(summaries[0].best) if summaries else []
    head = ["method", "seeds", *[f"best@{c}" for c in marks]]
    if exp.optimum is not None:
        head += [f"regret@{marks[-1]}" if marks else "regret", "reached opt.", "queries to opt."]
    head.append("errors")
    rows = []
    for s in summaries:
        cells = [s.method, str(s.seeds), *[f"{fmt(m)} ± {fmt(sd)}" if math.isfinite(m) else "-"
                                           for m, sd in s.best.values()]]
        if exp.optimum is not None:
            cells += [fmt(s.regret, 4), f"{s.reached}/{s.seeds}", fmt(s.queries_to_optimum, 1)]
        cells.append(str(s.errors))
        rows.append(cells)
    return head, rows
