"""NAS-Bench-Graph from the light tables embedded in the ``nas-bench-graph`` package.

Each of the 9 datasets maps ``valid_hash`` -> ``{'valid_perf', 'perf', 'latency', 'para'}`` for
every isomorphism class of the space (26,206 classes; 2,021 on proteins, which has 5 ops).
"""

from __future__ import annotations

import itertools
from functools import cache
from typing import Any

import numpy as np

from raynas._errors import BenchmarkFormatError, UnknownNameError
from raynas.benchmarks._registry import get_spec
from raynas.benchmarks._table import TabularBenchmark
from raynas.spaces._nasbench_graph import (
    LINKS,
    N_NODES,
    GraphArch,
    NASBenchGraphSpace,
    package_arch,
)

METRICS = ("val_accuracy", "test_accuracy", "latency", "params")
#: Forward passes charged per evaluation: about 500 epochs of training at ~2 inference
#: latencies each (forward and backward), the upper end of the benchmark's epoch grid.
EVAL_PASSES = 1000

TIME_MODEL = (
    "no training time in the table: simulated seconds = 1000 x the recorded inference latency "
    "(about 500 epochs of a forward and a backward pass; ~5 s for a typical cora model)"
)


def time_fn(arch: Any, results: dict[str, float]) -> float:
    """Simulated seconds of one evaluation: ``EVAL_PASSES`` x the recorded latency."""
    return float(results["latency"]) * EVAL_PASSES


TIME_FN = time_fn


@cache
def representatives(op_set: str = "default") -> dict[str, GraphArch]:
    """One encoding per key: the canonical one, for which ``Arch.check_isomorph()`` is true.

    These are the architectures of the package's ``all_archs()``: encodings that the package's
    normalisation (``move_skip_op`` then ``equalpart_sort``; ``regularize`` leaves the 9 link
    patterns alone) maps to themselves. Computed once per process (about 0.3 s).

    Args:
        op_set: ``"default"`` or ``"proteins"``, as for :class:`NASBenchGraphSpace`.

    Returns:
        ``{key: arch}`` for every isomorphism class of the space.
    """
    space = NASBenchGraphSpace(ops=op_set)
    out: dict[str, GraphArch] = {}
    for link in LINKS:
        for names in itertools.product(space.ops, repeat=N_NODES):
            if names == ("skip",) * N_NODES:
                continue
            norm = package_arch((link, names))
            norm.move_skip_op()
            norm.equalpart_sort()
            if tuple(norm.link) == link and tuple(norm.ops) == names:
                out[str(norm.hash_arch())] = GraphArch(link, names)  # type: ignore[arg-type]
    return out


def _light_read(dataset: str) -> dict[int, dict[str, Any]]:
    try:
        from nas_bench_graph import light_read
    except ImportError as exc:
        raise ImportError(
            "the NAS-Bench-Graph benchmark ships with the package nas-bench-graph: "
            "pip install nas-bench-graph"
        ) from exc
    return light_read(dataset)


def load_nasbench_graph(path: Any, dataset: str, **options: Any) -> TabularBenchmark:
    """Load NAS-Bench-Graph on ``dataset`` from the package's embedded tables.

    Metrics: ``val_accuracy`` and ``test_accuracy`` in percent (100 x ``valid_perf`` and
    ``perf``, the benchmark's mean over its runs), ``latency`` in seconds (inference, as
    recorded) and ``params`` in millions (the ``para`` field). One fidelity, one run. The
    proteins table uses the 5-op space (``NASBenchGraphSpace(ops="proteins")``).

    Args:
        path: Must be None: the data ships with the ``nas-bench-graph`` package.
        dataset: One of cora, citeseer, pubmed, cs, physics, photo, computers, arxiv, proteins.
        **options: None are accepted.

    Raises:
        BenchmarkFormatError: ``path`` was given, or the table holds an unknown key.
        UnknownNameError: unknown dataset (the message lists the valid ones).
        TypeError: unknown options.
    """
    spec = get_spec("nasbench_graph")
    if path is not None:
        raise BenchmarkFormatError(
            f"{path}: NAS-Bench-Graph ships with the nas-bench-graph package and reads no data "
            "file; call load('nasbench_graph', dataset=...) without a path (a Parquet file "
            "written by raynas is read as usual)"
        )
    if options:
        raise TypeError(f"load_nasbench_graph() takes no options, got {sorted(options)}")
    if dataset not in spec.datasets:
        raise UnknownNameError("dataset of nasbench_graph", dataset, spec.datasets)
    op_set = "proteins" if dataset == "proteins" else "default"
    space = NASBenchGraphSpace(ops=op_set)
    reps = representatives(op_set)
    table = _light_read(dataset)
    keys, strings = [], []
    values = np.empty((len(table), 1, 1, len(METRICS)))
    for i, (h, rec) in enumerate(table.items()):
        key = str(h)
        arch = reps.get(key)
        if arch is None:
            raise BenchmarkFormatError(
                f"nas_bench_graph light table {dataset!r}: key {key} is no architecture of "
                f"{space!r}; is the installed nas-bench-graph a version raynas does not know?"
            )
        try:
            values[i, 0, 0] = (
                100.0 * rec["valid_perf"],
                100.0 * rec["perf"],
                rec["latency"],
                rec["para"],
            )
        except (KeyError, TypeError) as exc:
            raise BenchmarkFormatError(
                f"nas_bench_graph light table {dataset!r}: bad record {key}: {exc!r}"
            ) from None
        keys.append(key)
        strings.append(space.to_string(arch))
    return TabularBenchmark(
        "nasbench_graph", space, keys, strings, values, METRICS,
        dataset=dataset, source=f"nas-bench-graph package (light/{dataset}.bench)",
        time_model=TIME_MODEL, time_fn=time_fn,
    )
