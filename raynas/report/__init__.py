"""Reports of an experiment: summary tables, figures, ``report.md`` and a self-contained ``report.html``.

Everything is read from the folder's ``results.parquet`` (one row per query, see
:mod:`raynas.runner`); :func:`write_report` writes every file, the functions below each make one.
"""

from raynas.report._experiment import (
    Experiment,
    incumbent_values,
    reference_rows,
    significance_rows,
    write_report,
)
from raynas.report._figures import (
    Figure,
    final_values,
    pareto_front,
    plot_costs,
    plot_curves,
    plot_final,
)
from raynas.report._references import REFERENCES, Reference
from raynas.report._stats import CLASSIC, Test, against_baseline, best_baseline, ci95
from raynas.report._summary import (
    DEFAULT_CHECKPOINTS,
    MethodSummary,
    failed_method,
    incumbent_matrix,
    summarize,
    to_csv,
    to_markdown,
)

__all__ = [
    "CLASSIC",
    "DEFAULT_CHECKPOINTS",
    "REFERENCES",
    "Experiment",
    "Figure",
    "MethodSummary",
    "Reference",
    "Test",
    "against_baseline",
    "best_baseline",
    "ci95",
    "failed_method",
    "final_values",
    "incumbent_matrix",
    "incumbent_values",
    "pareto_front",
    "plot_costs",
    "plot_curves",
    "plot_final",
    "reference_rows",
    "significance_rows",
    "summarize",
    "to_csv",
    "to_markdown",
    "write_report",
]
