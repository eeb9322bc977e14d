"""Published numbers to show beside ours where the benchmark and the query budget match.

Only numbers that can be cited are listed, each with its source. They are test accuracies (%) of
the best architecture found after a number of queries to the table, so a report sets beside them
the test accuracy of our incumbent (the best cell by the search metric) after as many queries.
"""

from __future__ import annotations

from dataclasses import dataclass

DNAS_PAPER = 'Zheng et al., "Disentangled Neural Architecture Search"'


@dataclass(frozen=True)
class Reference:
    benchmark: str
    dataset: str | None  # None: the benchmark has a single dataset
    method: str  # our method name
    queries: int
    test_accuracy: float  # percent
    std: float | None  # over runs, where the paper gives it
    source: str


REFERENCES: tuple[Reference, ...] = (
    # Table 1 (NASBench-101; test accuracy of the best architecture found).
    Reference("nasbench101", None, "random", 2000, 93.66, None, f"{DNAS_PAPER}, Table 1"),
    Reference("nasbench101", None, "evolution", 2000, 93.97, None, f"{DNAS_PAPER}, Table 1"),
    Reference("nasbench101", None, "nao", 2000, 93.87, None, f"{DNAS_PAPER}, Table 1"),
    Reference("nasbench101", None, "seminas", 2100, 94.09, None, f"{DNAS_PAPER}, Table 1"),
    Reference("nasbench101", None, "seminas", 300, 93.98, None, f"{DNAS_PAPER}, Table 1"),
    Reference("nasbench101", None, "dnas", 300, 94.21, None, f"{DNAS_PAPER}, Table 1"),
    Reference("nasbench101", None, "dnas", 150, 94.02, None, f"{DNAS_PAPER}, Table 1"),
    # Table 3 (ablations, 200 queries, mean ± std over 20 runs; full model: dense and disentangled).
    Reference("nasbench101", None, "dnas", 200, 94.05, 0.12, f"{DNAS_PAPER}, Table 3 (20 runs)"),
)


def matching(benchmark: str, dataset: str | None, methods, budget: int) -> list[Reference]:
    """References of the methods run, on this benchmark, at a query count within the budget."""
    return [r for r in REFERENCES
            if r.benchmark == benchmark and r.dataset in (None, dataset) and r.method in methods
            and r.queries <= budget]
