"""The disentanglement score of :func:`raynas.searchers.dnas.explain`, as plain maths.

Each cell gets discrete attributes (``op@i`` per sequence position, edge count and depth of
``space.to_graph``); each latent dimension is discretised into equal-width bins; the score is
the mutual information between every dimension and every attribute, summarised per attribute
as a MIG-style gap ``(top MI - second MI) / H(attribute)`` (Chen et al., 2018).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raynas.spaces import Arch, Space

#: Ops that pass data through unchanged (or drop it): not counted in depth.
_PASS_OPS = frozenset({"none", "skip_connect", "skip", "Identity", "identity"})
_BINS = 10


def attributes(space: Space, archs: list[Arch]) -> dict[str, np.ndarray]:
    """Discrete attributes of each cell: ``op@i`` per sequence position, ``edges``, ``depth``.

    ``edges`` counts graph edges between vertices whose op is not ``none``; ``depth`` is the
    number of vertices with a computing op (not ``none``/skip/identity, not input/output) on
    the longest input-to-output path of ``space.to_graph``.
    """
    seqs = np.array([space.to_sequence(a) for a in archs])  # (N, T)
    out = {f"op@{i}": seqs[:, i] for i in range(seqs.shape[1])}
    ops = tuple(getattr(space, "ops", ()))
    try:
        graphs = [space.to_graph(a) for a in archs]
    except NotImplementedError:
        return out
    edges, depth = [], []
    for adj, onehot in graphs:
        names = [ops[j] if j < len(ops) else "io" for j in onehot.argmax(axis=1)]
        alive = np.array([n != "none" for n in names])
        a = adj.astype(bool) & alive[:, None] & alive[None, :]
        edges.append(int(a.sum()))
        weight = np.array([0 if n in _PASS_OPS or n == "io" else 1 for n in names])
        depth.append(_longest_path(a, weight))
    out["edges"] = np.array(edges)
    out["depth"] = np.array(depth)
    return out


def _longest_path(adj: np.ndarray, weight: np.ndarray) -> int:
    """Heaviest path weight through a DAG whose vertices are topologically numbered (0 = input)."""
    n = len(adj)
    best = np.full(n, -1, dtype=np.int64)
    best[0] = weight[0]
    for v in range(1, n):
        preds = np.flatnonzero(adj[:, v])
        reach = [best[u] for u in preds if best[u] >= 0]
        if reach:
            best[v] = max(reach) + weight[v]
    return int(max(best[-1], 0))


def _discretise(x: np.ndarray, bins: int = _BINS) -> np.ndarray:
    edges = np.linspace(x.min(), x.max() + 1e-9, bins + 1)
    return np.clip(np.digitize(x, edges[1:-1]), 0, bins - 1)


def _entropy(labels: np.ndarray) -> float:
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def _mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai, bi), 1.0)
    joint /= joint.sum()
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(max(0.0, (joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum()))


def disentanglement(
    space: Space, codes: np.ndarray, archs: list[Arch], flops: np.ndarray | None = None
) -> dict[str, Any]:
    """Mutual information of each latent dimension with each attribute, and MIG-style gaps.

    Args:
        space: The search space.
        codes: ``(N, S)`` posterior means of ``archs``.
        archs: The cells.
        flops: FLOPs per cell (NaN where unknown), binned into deciles; None to skip.

    Returns:
        ``{"mig", "attributes": {name: {"entropy", "gap", "dims", "mi"}}, "skipped"}``: ``gap`` is
        ``(top MI - second MI) / H(attribute)`` in [0, 1], ``dims`` the two most informative
        dimensions, ``mi`` the MI (nats) of every dimension; ``mig`` the mean gap.
    """
    attrs = attributes(space, archs)
    if flops is not None:
        ok = ~np.isnan(flops)
        if ok.sum() >= 2:
            qs = np.quantile(flops[ok], np.linspace(0, 1, _BINS + 1)[1:-1])
            binned = np.full(len(flops), -1)
            binned[ok] = np.digitize(flops[ok], qs)
            attrs["flops"] = binned
    z = np.stack([_discretise(codes[:, d]) for d in range(codes.shape[1])], axis=1)
    result: dict[str, Any] = {"attributes": {}, "skipped": []}
    gaps = []
    for name, values in attrs.items():
        rows = values >= 0
        h = _entropy(values[rows])
        if h < 1e-9:
            result["skipped"].append(name)  # constant over these cells: nothing to control
            continue
        mi = np.array([_mutual_info(z[rows, d], values[rows]) for d in range(z.shape[1])])
        top = np.argsort(-mi, kind="stable")
        gap = float((mi[top[0]] - mi[top[1]]) / h) if len(mi) > 1 else float(mi[0] / h)
        gaps.append(gap)
        result["attributes"][name] = {
            "entropy": h, "gap": gap, "dims": [int(d) for d in top[:2]], "mi": [float(x) for x in mi],
        }
    result["mig"] = float(np.mean(gaps)) if gaps else 0.0
    return result


